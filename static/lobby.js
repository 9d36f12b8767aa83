// The lobby: live rooms (filter by topic and language), and a form to start a room.
import * as api from "./api.js";
import { h, replaceKeepingFocus } from "./dom.js";
import { language, t } from "./i18n.js";
import { audioOutput } from "./media.js";
import { describeError, languageName, showError, toast } from "./ui.js";

const REFRESH_MS = 5000;
const COMMON_LANGUAGES = ["en", "zh", "es", "fr", "de", "ja", "ko", "pt", "ru", "ar", "hi"];
const NAME_KEY = "chatrooms.name";

function splitTags(text) {
  return [
    ...new Set(
      String(text)
        .split(/[,，\s]+/)
        .map((s) => s.trim())
        .filter(Boolean),
    ),
  ];
}

/** An identity to act with: the stored one, else a new guest (guest mode only). */
export async function ensureIdentity(config, name) {
  const current = api.identity();
  if (current) return current;
  if (!config?.guest_mode) return null;
  const guest = await api.createGuest(name || localStorage.getItem(NAME_KEY) || undefined);
  return api.setIdentity(guest.token);
}

export class LobbyView {
  constructor(root, config, onIdentity) {
    this.root = root;
    this.config = config;
    this.onIdentity = onIdentity;
    this.rooms = [];
    this.loaded = false;
    this.failed = false;
    this.topic = "";
    this.lang = "";
    this.timer = null;
    this.busy = false;
  }

  mount() {
    this.listEl = h("div", { class: "room-list", "data-testid": "room-list", "aria-live": "polite" });
    this.filterEl = h("div");
    this.createEl = h("div");
    this.root.replaceChildren(
      h(
        "div",
        { class: "lobby" },
        h(
          "section",
          { class: "panel lobby-rooms", "aria-labelledby": "rooms-heading" },
          h("h1", { id: "rooms-heading" }, t("lobby.title")),
          h("p", { class: "muted" }, t("lobby.subtitle")),
          this.filterEl,
          this.listEl,
        ),
        h(
          "section",
          { class: "panel lobby-create", "aria-labelledby": "create-heading" },
          h("h2", { id: "create-heading" }, t("create.title")),
          this.createEl,
        ),
      ),
    );
    this.renderFilters();
    this.renderCreate();
    this.renderRooms();
    this.refresh();
    this.timer = setInterval(() => this.refresh(), REFRESH_MS);
  }

  destroy() {
    clearInterval(this.timer);
  }

  async refresh() {
    try {
      const { rooms } = await api.listRooms({ topic: this.topic, language: this.lang });
      this.rooms = rooms.filter((r) => r.status === "open");
      this.loaded = true;
      this.failed = false;
    } catch {
      this.failed = true;
    }
    this.renderRooms();
  }

  renderFilters() {
    const topic = h("input", {
      id: "filter-topic",
      type: "search",
      value: this.topic,
      placeholder: t("lobby.filter_topic_placeholder"),
      "data-testid": "filter-topic",
      autocomplete: "off",
    });
    const langs = h(
      "select",
      { id: "filter-language", "data-testid": "filter-language" },
      h("option", { value: "" }, t("lobby.any_language")),
      COMMON_LANGUAGES.map((code) =>
        h("option", { value: code, selected: code === this.lang }, languageName(code)),
      ),
    );
    let debounce = null;
    topic.addEventListener("input", () => {
      clearTimeout(debounce);
      debounce = setTimeout(() => {
        this.topic = topic.value.trim();
        this.refresh();
      }, 250);
    });
    langs.addEventListener("change", () => {
      this.lang = langs.value;
      this.refresh();
    });
    this.filterEl.replaceChildren(
      h(
        "form",
        { class: "filters", role: "search", onsubmit: (e) => e.preventDefault() },
        h(
          "label",
          { class: "field" },
          h("span", {}, t("lobby.filter_topic")),
          topic,
        ),
        h("label", { class: "field" }, h("span", {}, t("lobby.filter_language")), langs),
      ),
    );
  }

  renderRooms() {
    if (!this.listEl) return;
    if (!this.loaded) {
      replaceKeepingFocus(this.listEl, h("p", { class: "muted" }, t("lobby.loading")));
      return;
    }
    const items = this.rooms.map((room) => this.roomCard(room));
    replaceKeepingFocus(
      this.listEl,
      this.failed ? h("p", { class: "warn" }, t("lobby.load_failed")) : null,
      items.length
        ? h("ul", { class: "cards" }, items)
        : h(
            "p",
            { class: "empty", "data-testid": "no-rooms" },
            this.topic || this.lang ? t("lobby.none_match") : t("lobby.empty"),
          ),
    );
  }

  roomCard(room) {
    const speakers = room.speakers.slice(0, 6);
    const more = room.speakers.length - speakers.length;
    const href = `#/room/${encodeURIComponent(room.room_id)}`;
    return h(
      "li",
      { class: "card", "data-testid": "room-card", dataset: { roomId: room.room_id } },
      h(
        "h3",
        { class: "card-title" },
        h(
          "a",
          {
            href,
            "data-key": `room-${room.room_id}`,
            onclick: () => audioOutput.unlock(),
          },
          room.title,
        ),
        room.locked ? h("span", { class: "badge badge-lock" }, t("lobby.locked")) : null,
      ),
      h(
        "div",
        { class: "badges" },
        room.topics.map((topic) =>
          h("span", { class: "badge badge-topic", "data-testid": "topic-badge" }, `#${topic}`),
        ),
        room.languages.map((code) =>
          h(
            "span",
            { class: "badge badge-lang", "data-testid": "language-badge", lang: code, title: code },
            languageName(code),
          ),
        ),
      ),
      h(
        "p",
        { class: "card-speakers" },
        h("span", { class: "visually-hidden" }, t("lobby.speakers_label")),
        speakers.join(" · "),
        more > 0 ? ` ${t("lobby.more_speakers", { count: more })}` : "",
      ),
      h(
        "p",
        { class: "card-meta" },
        h(
          "span",
          { "data-testid": "listener-count" },
          t(room.listener_count === 1 ? "lobby.listening_one" : "lobby.listening", {
            count: room.listener_count,
          }),
        ),
        h(
          "a",
          {
            class: "button button-primary",
            href,
            "data-testid": "join-room",
            "data-key": `join-${room.room_id}`,
            "aria-label": t("lobby.join_label", { title: room.title }),
            onclick: () => audioOutput.unlock(),
          },
          t("lobby.join"),
        ),
      ),
    );
  }

  renderCreate() {
    const me = api.identity();
    const guestMode = Boolean(this.config?.guest_mode);
    const children = [];
    if (me) {
      children.push(
        h(
          "p",
          { class: "muted", "data-testid": "signed-in-as" },
          t(me.guest ? "identity.guest_as" : "identity.signed_in_as", { name: me.name }),
          " ",
          h(
            "button",
            {
              type: "button",
              class: "link",
              onclick: () => {
                api.signOut();
                this.onIdentity();
                this.renderCreate();
              },
            },
            t("identity.sign_out"),
          ),
        ),
      );
    } else if (guestMode) {
      children.push(
        h(
          "label",
          { class: "field" },
          h("span", {}, t("identity.your_name")),
          h("input", {
            id: "guest-name",
            name: "name",
            maxlength: 64,
            autocomplete: "nickname",
            value: localStorage.getItem(NAME_KEY) || "",
            "data-testid": "guest-name",
            oninput: (e) => localStorage.setItem(NAME_KEY, e.target.value.trim()),
          }),
          h("small", { class: "muted" }, t("identity.guest_hint")),
        ),
      );
    }
    const langDefault = language() === "zh-CN" ? "zh" : "en";
    const form = h(
      "form",
      { class: "create-form", "data-testid": "create-form", onsubmit: (e) => this.create(e) },
      children,
      h(
        "label",
        { class: "field" },
        h("span", {}, t("create.room_title")),
        h("input", {
          name: "title",
          required: true,
          maxlength: 120,
          "data-testid": "create-title",
          placeholder: t("create.title_placeholder"),
        }),
      ),
      h(
        "label",
        { class: "field" },
        h("span", {}, t("create.topics")),
        h("input", {
          name: "topics",
          "data-testid": "create-topics",
          placeholder: t("create.topics_placeholder"),
          autocomplete: "off",
        }),
        h("small", { class: "muted" }, t("create.topics_hint")),
      ),
      h(
        "label",
        { class: "field" },
        h("span", {}, t("create.languages")),
        h("input", {
          name: "languages",
          value: langDefault,
          "data-testid": "create-languages",
          autocomplete: "off",
        }),
        h("small", { class: "muted" }, t("create.languages_hint")),
      ),
      h(
        "label",
        { class: "field field-narrow" },
        h("span", {}, t("create.stage_size")),
        h("input", {
          name: "stage_size",
          type: "number",
          min: 1,
          max: 50,
          value: 10,
          required: true,
          "data-testid": "create-stage-size",
        }),
      ),
      me || guestMode
        ? h(
            "button",
            { type: "submit", class: "button button-primary", "data-testid": "create-submit" },
            t("create.submit"),
          )
        : h("p", { class: "warn" }, t("identity.need_token")),
    );
    const signIn = h(
      "details",
      { class: "sign-in" },
      h("summary", {}, t("identity.sign_in_token")),
      h(
        "form",
        {
          onsubmit: (e) => {
            e.preventDefault();
            const token = new FormData(e.target).get("token").trim();
            if (!api.setIdentity(token)) {
              toast(t("identity.bad_token"));
              return;
            }
            this.onIdentity();
            this.renderCreate();
          },
        },
        h(
          "label",
          { class: "field" },
          h("span", {}, t("identity.token")),
          h("input", { name: "token", required: true, autocomplete: "off", spellcheck: "false" }),
        ),
        h("button", { type: "submit", class: "button" }, t("identity.sign_in")),
      ),
    );
    this.createEl.replaceChildren(form, me ? null : signIn);
  }

  async create(e) {
    e.preventDefault();
    audioOutput.unlock(); // a click: the room's audio may start without another one
    if (this.busy) return;
    const data = new FormData(e.target);
    const body = {
      title: String(data.get("title") || "").trim(),
      topics: splitTags(data.get("topics") || "").slice(0, 5),
      languages: splitTags(data.get("languages") || "")
        .map((x) => x.toLowerCase())
        .slice(0, 5),
      stage_size: Number(data.get("stage_size") || 10),
    };
    if (!body.title) return;
    this.busy = true;
    try {
      const name = data.get("name") ? String(data.get("name")).trim() : undefined;
      let me = await ensureIdentity(this.config, name);
      if (!me) {
        toast(t("identity.need_token"));
        return;
      }
      this.onIdentity();
      let res;
      try {
        res = await api.createRoom(me.token, body);
      } catch (err) {
        if (!me.guest || !["token_expired", "token_invalid"].includes(err.code)) throw err;
        api.signOut(); // a stale guest token: start again as a new guest
        me = await ensureIdentity(this.config, name);
        res = await api.createRoom(me.token, body);
      }
      api.setHostToken(res.id, res.token);
      location.hash = `#/room/${encodeURIComponent(res.id)}`;
    } catch (err) {
      toast(describeError(err.code, err.message));
    } finally {
      this.busy = false;
    }
  }
}

export { showError };
