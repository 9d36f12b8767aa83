// The page: language, top bar, and a hash router between the lobby and a room.
import * as api from "./api.js";
import { detectLanguage, onLanguageChange, setLanguage, t } from "./i18n.js";
import { LobbyView } from "./lobby.js";
import { audioOutput } from "./media.js";
import { RoomView } from "./room.js";
import { setStatus } from "./ui.js";

let config = { guest_mode: false, protocol: 1 };
let view = null;

function renderWho() {
  const me = api.identity();
  const el = document.getElementById("who");
  el.textContent = me ? t(me.guest ? "identity.badge_guest" : "identity.badge", { name: me.name }) : "";
}

function route() {
  const main = document.getElementById("main");
  view?.destroy();
  view = null;
  setStatus(null);
  const match = location.hash.match(/^#\/room\/([^/?#]+)/);
  if (match) {
    const roomId = decodeURIComponent(match[1]);
    document.title = t("app.title_room");
    view = new RoomView(main, roomId, config, renderWho);
  } else {
    document.title = t("app.title");
    view = new LobbyView(main, config, renderWho);
  }
  view.mount();
  renderWho();
}

async function main() {
  await setLanguage(detectLanguage());
  const select = document.getElementById("lang");
  select.value = document.documentElement.lang;
  select.addEventListener("change", () => setLanguage(select.value, { remember: true }));
  onLanguageChange((lang) => {
    select.value = lang;
    // Views build their text when they render: build the current one again. A room
    // keeps its connection; only the page is drawn again.
    if (view instanceof RoomView && view.client) {
      view.build();
    } else {
      route();
    }
    renderWho();
  });
  try {
    const res = await fetch("/api/config");
    if (res.ok) config = await res.json();
  } catch {
    // Keep the defaults: the lobby still lists rooms.
  }
  // The first click or key anywhere may start audio (autoplay rules, iOS included).
  const unlock = () => audioOutput.unlock();
  document.addEventListener("pointerdown", unlock, { capture: true });
  document.addEventListener("keydown", unlock, { capture: true });
  // Escape closes an open menu and gives focus back to the button that opened it.
  document.addEventListener("keydown", (e) => {
    if (e.key !== "Escape") return;
    const menu = document.activeElement?.closest?.("details[open]") || document.querySelector("details.menu[open]");
    if (!menu) return;
    menu.open = false;
    menu.querySelector("summary")?.focus();
  });
  window.addEventListener("hashchange", route);
  route();
}

main();
