// Page-wide bits: toasts for errors, the status line, language names.
import { h } from "./dom.js";
import { has, language, t } from "./i18n.js";

const KNOWN_ERRORS = {
  forbidden: "error.forbidden",
  not_in_room: "error.not_in_room",
  not_found: "error.not_found",
  room_ended: "error.room_ended",
  room_locked: "error.room_locked",
  banned: "error.banned",
  kicked: "error.kicked",
  stage_full: "error.stage_full",
  invalid_target: "error.invalid_target",
  invalid_state: "error.invalid_state",
  invalid_argument: "error.invalid_argument",
  unavailable: "error.unavailable",
  rate_limited: "error.rate_limited",
  token_required: "error.token_required",
  token_invalid: "error.token_invalid",
  token_expired: "error.token_expired",
  invalid_sdp: "error.invalid_sdp",
  network: "error.network",
  timeout: "error.timeout",
  disconnected: "error.disconnected",
  internal: "error.internal",
};

/** A server error for the user: the server writes English, so in English its own
 * (more precise) words are shown; in other languages the catalogue's text for the code. */
export function describeError(code, message) {
  const key = KNOWN_ERRORS[code];
  if (message && (language() === "en" || !key)) return message;
  if (key && has(key)) return t(key);
  return t("error.unknown", { code: code || "?" });
}

export function toast(text, kind = "error") {
  const box = document.getElementById("toasts");
  const item = h(
    "div",
    { class: `toast toast-${kind}`, "data-testid": "toast" },
    h("span", {}, text),
    h(
      "button",
      {
        type: "button",
        class: "toast-close",
        "aria-label": t("common.dismiss"),
        onclick: () => item.remove(),
      },
      "×",
    ),
  );
  box.append(item);
  setTimeout(() => item.remove(), 8000);
}

export function showError(err) {
  toast(describeError(err?.code, err?.message));
}

export function setStatus(text, kind = "info") {
  const el = document.getElementById("status");
  if (!text) {
    el.hidden = true;
    el.textContent = "";
    return;
  }
  el.hidden = false;
  el.className = `status status-${kind}`;
  // Only real changes: a live region re-reads whatever is written to it.
  if (el.textContent !== text) el.textContent = text;
}

let namesCache = null;
let namesLang = null;

export function languageName(code) {
  try {
    if (namesLang !== language()) {
      namesCache = new Intl.DisplayNames([language()], { type: "language" });
      namesLang = language();
    }
    const name = namesCache.of(code);
    return name && name !== code ? name : code;
  } catch {
    return code;
  }
}
