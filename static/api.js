// The HTTP API, and what the browser keeps in localStorage: its identity (a guest or a
// signed token) and, per room it created, the token carrying the host grant.

const IDENTITY_KEY = "chatrooms.identity";
const HOST_TOKENS_KEY = "chatrooms.hostTokens";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function call(method, path, { body, token } = {}) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    throw new ApiError(0, "network", String(err));
  }
  let data = null;
  try {
    data = await res.json();
  } catch {
    data = null;
  }
  if (!res.ok) {
    const error = data?.error || {};
    throw new ApiError(res.status, error.code || `http_${res.status}`, error.message || "");
  }
  return data;
}

export const getConfig = () => call("GET", "/api/config");

export function listRooms({ topic = "", language = "" } = {}) {
  const q = new URLSearchParams();
  if (topic) q.set("topic", topic);
  if (language) q.set("language", language);
  const qs = q.toString();
  return call("GET", `/api/rooms${qs ? `?${qs}` : ""}`);
}

export const getRoom = (id) => call("GET", `/api/rooms/${encodeURIComponent(id)}`);
export const createGuest = (name) => call("POST", "/api/guest", { body: name ? { name } : {} });
export const createRoom = (token, body) => call("POST", "/api/rooms", { body, token });

/** What a token says about its holder (not verified here: the server does that). */
export function decodeToken(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const json = decodeURIComponent(
      [...atob(part)].map((c) => `%${c.charCodeAt(0).toString(16).padStart(2, "0")}`).join(""),
    );
    const claims = JSON.parse(json);
    return {
      user_id: String(claims.sub || ""),
      name: String(claims.name || claims.sub || ""),
      guest: Boolean(claims.guest),
      exp: Number(claims.exp || 0),
    };
  } catch {
    return null;
  }
}

function readJson(key, fallback) {
  try {
    return JSON.parse(localStorage.getItem(key)) ?? fallback;
  } catch {
    return fallback;
  }
}

/** {token, user_id, name, guest} or null. Expired tokens are forgotten. */
export function identity() {
  const id = readJson(IDENTITY_KEY, null);
  if (!id || !id.token) return null;
  const claims = decodeToken(id.token);
  if (claims?.exp && claims.exp * 1000 < Date.now() + 60_000) {
    localStorage.removeItem(IDENTITY_KEY);
    return null;
  }
  return id;
}

export function setIdentity(token) {
  const claims = decodeToken(token);
  if (!claims || !claims.user_id) return null;
  const id = { token, user_id: claims.user_id, name: claims.name, guest: claims.guest };
  localStorage.setItem(IDENTITY_KEY, JSON.stringify(id));
  return id;
}

export function signOut() {
  localStorage.removeItem(IDENTITY_KEY);
}

export function hostToken(roomId) {
  const tokens = readJson(HOST_TOKENS_KEY, {});
  const token = tokens[roomId];
  const me = identity();
  if (!token) return null;
  const claims = decodeToken(token);
  if (!claims || (me && claims.user_id !== me.user_id)) return null;
  if (claims.exp && claims.exp * 1000 < Date.now()) return null;
  return token;
}

export function setHostToken(roomId, token) {
  const tokens = readJson(HOST_TOKENS_KEY, {});
  // Forget tokens of rooms that have expired, so the map does not grow for ever.
  for (const [room, tok] of Object.entries(tokens)) {
    const claims = decodeToken(tok);
    if (!claims || (claims.exp && claims.exp * 1000 < Date.now())) delete tokens[room];
  }
  tokens[roomId] = token;
  localStorage.setItem(HOST_TOKENS_KEY, JSON.stringify(tokens));
}
