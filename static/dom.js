// A tiny element builder: h("button", {class: "x", onclick: fn}, "text", child).

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (name === "class") {
      el.className = value;
    } else if (name === "dataset") {
      Object.assign(el.dataset, value);
    } else if (name in el && typeof value !== "string") {
      el[name] = value;
    } else {
      el.setAttribute(name, value === true ? "" : value);
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

/** Replace the children of `el`, keeping focus and open <details> by data-key. */
export function replaceKeepingFocus(el, ...children) {
  const active = document.activeElement;
  const focusKey = active && el.contains(active) ? active.dataset.key : undefined;
  const open = new Set(
    [...el.querySelectorAll("details[open][data-key]")].map((d) => d.dataset.key),
  );
  el.replaceChildren();
  append(el, children);
  for (const d of el.querySelectorAll("details[data-key]")) {
    if (open.has(d.dataset.key)) d.open = true;
  }
  if (focusKey) {
    const again = el.querySelector(`[data-key="${CSS.escape(focusKey)}"]`);
    if (again) again.focus();
  }
}

export function initials(name) {
  const parts = String(name || "?").trim().split(/\s+/).filter(Boolean);
  if (!parts.length) return "?";
  const first = [...parts[0]][0] || "?";
  const second = parts.length > 1 ? [...parts[parts.length - 1]][0] : "";
  return (first + second).toUpperCase();
}

/** A stable hue for a user's avatar, kept away from the green of the speaking ring. */
export function hue(text) {
  let n = 0;
  for (const ch of String(text)) n = (n * 31 + ch.codePointAt(0)) % 220;
  return (n + 180) % 360;
}
