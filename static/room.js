// The room: the stage, the audience, your controls, the moderators' controls.
import * as api from "./api.js";
import { RoomClient } from "./client.js";
import { h, hue, initials, replaceKeepingFocus } from "./dom.js";
import { t } from "./i18n.js";
import { audioOutput, Media } from "./media.js";
import { actionsOn, can, onStage } from "./permissions.js";
import { ensureIdentity } from "./lobby.js";
import { describeError, languageName, setStatus, showError, toast } from "./ui.js";

const ROLE_KEYS = {
  host: "role.host",
  moderator: "role.moderator",
  speaker: "role.speaker",
  listener: "role.listener",
};
const ACTION_KEYS = {
  invite: "action.invite",
  dismiss: "action.dismiss",
  move_to_audience: "action.move_to_audience",
  force_mute: "action.force_mute",
  allow_speak: "action.allow_speak",
  add_moderator: "action.add_moderator",
  remove_moderator: "action.remove_moderator",
  kick: "action.kick",
  ban: "action.ban",
};
const ACTION_COMMANDS = {
  invite: (u) => ({ type: "invite", user_id: u }),
  dismiss: (u) => ({ type: "lower_hand", user_id: u }),
  move_to_audience: (u) => ({ type: "move_to_audience", user_id: u }),
  force_mute: (u) => ({ type: "mute", user_id: u }),
  allow_speak: (u) => ({ type: "unmute", user_id: u }),
  add_moderator: (u) => ({ type: "add_moderator", user_id: u }),
  remove_moderator: (u) => ({ type: "remove_moderator", user_id: u }),
  kick: (u) => ({ type: "kick", user_id: u }),
  ban: (u) => ({ type: "ban", user_id: u }),
};
const CLOSED_KEYS = {
  kicked: "closed.kicked",
  banned: "closed.banned",
  room_ended: "closed.room_ended",
  left: "closed.left",
  replaced: "closed.replaced",
  room_locked: "closed.room_locked",
  not_found: "closed.not_found",
  token_required: "closed.token_required",
  token_invalid: "closed.token_invalid",
  token_expired: "closed.token_invalid",
  unsupported_version: "closed.unsupported_version",
};
// Listeners fetched per "load more" (the server allows 1 to 100).
const AUDIENCE_PAGE = 50;
// After these, the listener is no longer in the audience (or it no longer matters here).
const LEAVES_AUDIENCE = new Set(["kick", "ban", "add_moderator"]);

const MIC_KEYS = {
  denied: "mic.denied",
  missing: "mic.missing",
  insecure: "mic.insecure",
  busy: "mic.busy",
  other: "mic.other",
};

const MIC_ON = `<svg viewBox="0 0 24 24" aria-hidden="true" focusable="false"><path d="M12 14a3 3 0 0 0 3-3V5a3 3 0 1 0-6 0v6a3 3 0 0 0 3 3zm5-3a5 5 0 0 1-10 0H5a7 7 0 0 0 6 6.92V21h2v-3.08A7 7 0 0 0 19 11z"/></svg>`;
const MIC_OFF = `<svg viewBox="0 0 24 24" aria-hidden="true" focusable="false"><path d="M19 11h-2c0 .74-.16 1.43-.43 2.05l1.5 1.5A6.9 6.9 0 0 0 19 11zm-4 .17V5a3 3 0 0 0-5.94-.6L15 10.34zM4.27 3 3 4.27l6 6V11a3 3 0 0 0 4.23 2.74l1.66 1.66A5 5 0 0 1 7 11H5a7 7 0 0 0 6 6.92V21h2v-3.08a6.9 6.9 0 0 0 3.03-1.1L19.73 21 21 19.73z"/></svg>`;

function icon(svg) {
  const span = h("span", { class: "icon" });
  span.innerHTML = svg; // constant markup, never user input
  return span;
}

export class RoomView {
  constructor(root, roomId, config, onIdentity) {
    this.root = root;
    this.roomId = roomId;
    this.config = config;
    this.onIdentity = onIdentity;
    this.client = null;
    this.media = null;
    this.info = null;
    this.tick = null;
    // The listener list of moderators: pulled a page at a time, never pushed.
    this.listing = { open: false, users: [], next: null, total: 0, loaded: false, loading: false };
  }

  async mount() {
    this.root.replaceChildren(h("p", { class: "panel muted" }, t("room.joining")));
    let me = null;
    try {
      me = await ensureIdentity(this.config);
      this.onIdentity();
    } catch (err) {
      showError(err);
    }
    if (this.destroyed) return;
    const token = api.hostToken(this.roomId) || me?.token || null;
    const client = new RoomClient({ roomId: this.roomId, token, name: null });
    const media = new Media(client);
    this.client = client;
    this.media = media;
    window.chatrooms = {
      client,
      media,
      get pc() {
        return media.pc;
      },
      stats: () => media.inboundStats(),
      // Send a command as the page's buttons do (errors shown to the user): for tests.
      command: (cmd) => this.command(cmd),
    };
    client.addEventListener("joined", () => {
      media.start();
      this.syncMedia();
    });
    client.addEventListener("change", () => {
      this.syncMedia();
      this.render();
    });
    client.addEventListener("phase", () => this.renderStatus());
    client.addEventListener("stats", () => this.renderCounts());
    client.addEventListener("speakers", () => this.renderSpeaking());
    client.addEventListener("server_error", (e) => toast(describeError(e.detail.code, e.detail.message)));
    client.addEventListener("event", (e) => this.announce(e.detail));
    media.addEventListener("change", () => {
      this.renderStatus();
      this.renderControls();
    });
    media.addEventListener("error", (e) => showError(e.detail));
    audioOutput.onchange = () => this.renderStatus();
    this.build();
    client.start();
    this.tick = setInterval(() => {
      if (client.phase === "waiting") this.renderStatus();
    }, 1000);
  }

  destroy() {
    this.destroyed = true;
    clearInterval(this.tick);
    audioOutput.onchange = () => {};
    if (this.client && this.client.phase !== "closed") this.client.leave();
    this.media?.close();
    setStatus(null);
  }

  /** Keep the microphone in step with the room: on stage or not, muted or not. */
  syncMedia() {
    const you = this.client?.snap?.you;
    if (!you || this.client.phase === "closed") return;
    const staged = onStage(you.role);
    this.media.setMuted(Boolean(you.muted));
    if (staged !== this.media.wantMic) this.media.setOnStage(staged);
  }

  // --------------------------------------------------------------- layout
  build() {
    this._inviteShown = false;
    this.headerEl = h("header", { class: "room-header" });
    this.noticeEl = h("div", { class: "notices" });
    this.inviteEl = h("div");
    this.stageEl = h("ol", { class: "stage-grid", "data-testid": "stage", "aria-labelledby": "stage-heading" });
    this.audienceEl = h("div", { class: "audience" });
    this.modEl = h("div");
    this.controlsEl = h("div", { class: "controls", role: "toolbar", "aria-label": t("room.your_controls") });
    this.root.replaceChildren(
      h(
        "div",
        { class: "room", "data-testid": "room" },
        this.headerEl,
        this.noticeEl,
        this.inviteEl,
        h(
          "section",
          { class: "panel", "aria-labelledby": "stage-heading" },
          h("h2", { id: "stage-heading" }, t("room.stage")),
          this.stageEl,
        ),
        h(
          "div",
          { class: "room-columns" },
          h(
            "section",
            { class: "panel", "aria-labelledby": "audience-heading" },
            h("h2", { id: "audience-heading" }, t("room.audience")),
            this.audienceEl,
          ),
          this.modEl,
        ),
        this.controlsEl,
      ),
    );
    this.render();
    this.renderStatus();
  }

  render() {
    const c = this.client;
    if (!c) return;
    if (c.phase === "closed" && c.closedWhy) {
      this.renderClosed();
      return;
    }
    if (!c.snap) return;
    this.renderHeader();
    this.renderInvite();
    this.renderStage();
    this.renderAudience();
    this.renderModeration();
    this.renderControls();
    this.renderStatus();
  }

  renderHeader() {
    const info = this.client.snap.info;
    replaceKeepingFocus(
      this.headerEl,
      h("h1", { class: "room-title", "data-testid": "room-title" }, info.title),
      h(
        "div",
        { class: "badges" },
        info.locked ? h("span", { class: "badge badge-lock", "data-testid": "locked" }, t("room.locked")) : null,
        info.topics.map((x) => h("span", { class: "badge badge-topic" }, `#${x}`)),
        info.languages.map((x) => h("span", { class: "badge badge-lang", lang: x }, languageName(x))),
      ),
      h("p", { class: "room-counts", "data-testid": "counts" }, this.countsText()),
    );
  }

  countsText() {
    const c = this.client;
    const n = c.listeners;
    return [
      t("room.on_stage", { count: c.snap.stage.length, size: c.snap.info.stage_size }),
      t(n === 1 ? "lobby.listening_one" : "lobby.listening", { count: n }),
    ].join(" · ");
  }

  renderCounts() {
    const el = this.headerEl?.querySelector('[data-testid="counts"]');
    if (el && this.client.snap) el.textContent = this.countsText();
    if (this.client.snap) this.renderAudience();
  }

  renderInvite() {
    const you = this.client.snap.you;
    if (!you || !you.invited || you.role !== "listener") {
      this.inviteEl.replaceChildren();
      this._inviteShown = false;
      return;
    }
    if (this._inviteShown) return;
    this._inviteShown = true;
    const accept = h(
      "button",
      {
        type: "button",
        class: "button button-primary",
        "data-testid": "accept-invite",
        onclick: () => {
          audioOutput.unlock();
          this.command({ type: "accept_invite" });
        },
      },
      t("invite.accept"),
    );
    this.inviteEl.replaceChildren(
      h(
        "div",
        {
          class: "invite panel",
          role: "alertdialog",
          "aria-labelledby": "invite-title",
          "aria-describedby": "invite-text",
          "data-testid": "invite-prompt",
        },
        h("h2", { id: "invite-title" }, t("invite.title")),
        h("p", { id: "invite-text" }, t("invite.text")),
        h(
          "div",
          { class: "row" },
          accept,
          h(
            "button",
            {
              type: "button",
              class: "button",
              "data-testid": "decline-invite",
              onclick: () => this.command({ type: "decline_invite" }),
            },
            t("invite.decline"),
          ),
        ),
      ),
    );
    accept.focus();
  }

  renderStage() {
    const c = this.client;
    const you = c.snap.you;
    const full = c.snap.stage.length >= c.snap.info.stage_size;
    const speaking = new Set(c.speaking);
    const tiles = c.snap.stage.map((m) => {
      const isYou = you && m.user_id === you.user_id;
      const actions = actionsOn(you, m, full);
      const state = m.muted ? (m.mute_forced ? t("stage.muted_forced") : t("stage.muted")) : t("stage.unmuted");
      return h(
        "li",
        {
          class: `tile${speaking.has(m.user_id) ? " speaking" : ""}`,
          "data-testid": "stage-member",
          dataset: { userId: m.user_id, role: m.role, muted: String(m.muted) },
        },
        h(
          "div",
          { class: "avatar", style: `--hue:${hue(m.user_id)}`, "aria-hidden": "true" },
          initials(m.name),
        ),
        h(
          "span",
          { class: `mic-badge${m.muted ? " is-muted" : ""}${m.mute_forced ? " is-forced" : ""}`, title: state },
          icon(m.muted ? MIC_OFF : MIC_ON),
          h("span", { class: "visually-hidden" }, state),
        ),
        h("span", { class: "tile-name" }, m.name, isYou ? h("span", { class: "you" }, ` ${t("stage.you")}`) : null),
        h("span", { class: `role role-${m.role}` }, t(ROLE_KEYS[m.role])),
        h("span", { class: "visually-hidden speaking-text" }, speaking.has(m.user_id) ? t("stage.speaking") : ""),
        actions.length ? this.actionMenu(m, actions) : null,
      );
    });
    replaceKeepingFocus(this.stageEl, tiles);
  }

  renderSpeaking() {
    if (!this.stageEl) return;
    const speaking = new Set(this.client.speaking);
    for (const tile of this.stageEl.querySelectorAll(".tile")) {
      const on = speaking.has(tile.dataset.userId);
      tile.classList.toggle("speaking", on);
      const text = tile.querySelector(".speaking-text");
      if (text) text.textContent = on ? t("stage.speaking") : "";
    }
  }

  actionMenu(target, actions) {
    return h(
      "details",
      { class: "menu", "data-key": `menu-${target.user_id}` },
      h(
        "summary",
        {
          class: "button button-small",
          "data-key": `menu-summary-${target.user_id}`,
          "data-testid": "manage",
          "aria-label": t("action.manage_label", { name: target.name }),
        },
        t("action.manage"),
      ),
      h(
        "div",
        { class: "menu-items" },
        actions.map((a) =>
          h(
            "button",
            {
              type: "button",
              class: `button button-small${a === "kick" || a === "ban" ? " button-danger" : ""}`,
              "data-action": a,
              "data-key": `act-${a}-${target.user_id}`,
              onclick: (e) => {
                const menu = e.currentTarget.closest("details");
                if (menu) menu.open = false;
                this.moderate(a, target);
              },
            },
            t(ACTION_KEYS[a]),
          ),
        ),
      ),
    );
  }

  async moderate(action, target) {
    if (action === "ban" && !window.confirm(t("confirm.ban", { name: target.name }))) return;
    const done = await this.command(ACTION_COMMANDS[action](target.user_id));
    const l = this.listing;
    if (done && LEAVES_AUDIENCE.has(action) && l.users.some((u) => u.user_id === target.user_id)) {
      l.users = l.users.filter((u) => u.user_id !== target.user_id);
      l.total = Math.max(0, l.total - 1);
      this.renderAudience();
    }
  }

  /** Fetch the first page of listeners again (`more`: the next page, appended). */
  async loadAudience(more = false) {
    const l = this.listing;
    if (l.loading || (more && !l.next)) return;
    l.loading = true;
    this.renderAudience();
    const cmd = { type: "list_audience", limit: AUDIENCE_PAGE };
    if (more) cmd.cursor = l.next;
    try {
      const page = await this.client.request(cmd);
      const users = more ? l.users : [];
      const seen = new Set(users.map((u) => u.user_id));
      for (const u of page.users) if (!seen.has(u.user_id)) users.push(u); // a rare repeat
      Object.assign(l, { users, next: page.next_cursor, total: page.total, loaded: true });
    } catch (err) {
      showError(err);
    } finally {
      l.loading = false;
      if (this.client.snap) this.renderAudience();
    }
  }

  renderAudience() {
    const c = this.client;
    const you = c.snap.you;
    const n = c.listeners;
    const staff = you && onStage(you.role);
    const full = c.snap.stage.length >= c.snap.info.stage_size;
    const parts = [
      h(
        "p",
        { class: "audience-count", "data-testid": "audience-count" },
        t(n === 1 ? "lobby.listening_one" : "lobby.listening", { count: n }),
        " · ",
        t(c.queueLength === 1 ? "queue.length_one" : "queue.length", { count: c.queueLength }),
      ),
    ];
    if (staff) {
      const invited = new Set(c.snap.invited);
      parts.push(h("h3", {}, t("queue.title")));
      if (!c.snap.queue.length) {
        parts.push(h("p", { class: "muted" }, t("queue.empty")));
      } else {
        parts.push(
          h(
            "ol",
            { class: "queue", "data-testid": "queue" },
            c.snap.queue.map((q, i) => {
              const target = { ...q, role: "listener", hand: true, invited: invited.has(q.user_id) };
              const actions = actionsOn(you, target, full);
              const quick = actions.includes("invite")
                ? h(
                    "button",
                    {
                      type: "button",
                      class: "button button-small button-primary",
                      "data-testid": "invite",
                      "data-key": `invite-${q.user_id}`,
                      "aria-label": t("action.invite_label", { name: q.name }),
                      onclick: () => this.moderate("invite", target),
                    },
                    t("action.invite"),
                  )
                : null;
              return h(
                "li",
                { class: "queue-item", "data-testid": "queue-entry", dataset: { userId: q.user_id } },
                h("span", { class: "queue-pos" }, `${i + 1}`),
                h("span", { class: "queue-name" }, q.name),
                target.invited ? h("span", { class: "badge" }, t("queue.invited")) : null,
                quick,
                this.actionMenu(
                  target,
                  actions.filter((a) => a !== "invite"),
                ),
              );
            }),
          ),
        );
      }
      const outside = c.snap.invited.filter((u) => !c.snap.queue.some((q) => q.user_id === u));
      if (outside.length) parts.push(h("p", { class: "muted" }, t("queue.invited_outside", { count: outside.length })));
      if (can(you.role, "invite")) parts.push(this.listenerPanel(you, full, invited));
    } else {
      parts.push(h("p", { class: "muted small" }, t("audience.private")));
    }
    replaceKeepingFocus(this.audienceEl, parts);
  }

  /** Every listener, hand raised or not, for moderators: opened on demand, paged. */
  listenerPanel(you, full, invited) {
    const c = this.client;
    const l = this.listing;
    const queued = new Set(c.snap.queue.map((q) => q.user_id));
    // Someone who came on stage since the page was fetched is no longer a listener.
    const staged = new Set(c.snap.stage.map((m) => m.user_id));
    const users = l.users.filter((u) => !staged.has(u.user_id));
    const body = [];
    if (!l.loaded) {
      body.push(h("p", { class: "muted small" }, t("audience.loading")));
    } else if (!users.length) {
      body.push(h("p", { class: "muted", "data-testid": "audience-empty" }, t("audience.empty")));
    } else {
      body.push(
        h(
          "ul",
          { class: "queue listeners", "data-testid": "audience-list" },
          users.map((u) => {
            const target = { ...u, role: "listener", hand: queued.has(u.user_id), invited: invited.has(u.user_id) };
            const actions = actionsOn(you, target, full);
            return h(
              "li",
              { class: "queue-item", "data-testid": "audience-entry", dataset: { userId: u.user_id } },
              h("span", { class: "avatar avatar-small", style: `--hue:${hue(u.user_id)}`, "aria-hidden": "true" }, initials(u.name)),
              h("span", { class: "queue-name" }, u.name),
              target.invited ? h("span", { class: "badge" }, t("queue.invited")) : null,
              actions.includes("invite")
                ? h(
                    "button",
                    {
                      type: "button",
                      class: "button button-small button-primary",
                      "data-testid": "invite",
                      "data-key": `aud-invite-${u.user_id}`,
                      "aria-label": t("action.invite_label", { name: u.name }),
                      onclick: () => this.moderate("invite", target),
                    },
                    t("action.invite"),
                  )
                : null,
              this.actionMenu(
                target,
                actions.filter((a) => a !== "invite"),
              ),
            );
          }),
        ),
      );
    }
    const footer = h(
      "div",
      { class: "row" },
      l.loaded ? h("span", { class: "muted small", "data-testid": "audience-shown" }, t("audience.shown", { shown: users.length, total: l.total })) : null,
      l.next
        ? h(
            "button",
            {
              type: "button",
              class: "button button-small",
              "data-key": "audience-more",
              "data-testid": "audience-more",
              disabled: l.loading || undefined,
              onclick: () => this.loadAudience(true),
            },
            t("audience.load_more"),
          )
        : null,
      h(
        "button",
        {
          type: "button",
          class: "button button-small",
          "data-key": "audience-refresh",
          "data-testid": "audience-refresh",
          disabled: l.loading || undefined,
          onclick: () => this.loadAudience(),
        },
        t("audience.refresh"),
      ),
    );
    return h(
      "details",
      {
        class: "listeners-panel",
        "data-testid": "audience-panel",
        open: l.open || undefined,
        ontoggle: (e) => {
          const open = e.currentTarget.open;
          if (open === l.open) return; // a re-render, not the user
          l.open = open;
          if (open) this.loadAudience();
        },
      },
      h(
        "summary",
        { class: "listeners-summary", "data-key": "audience-toggle", "data-testid": "audience-toggle" },
        t("audience.listeners"),
      ),
      h("div", { "aria-live": "polite", "aria-busy": String(l.loading) }, body, footer),
    );
  }

  renderModeration() {
    const you = this.client.snap.you;
    if (!you || !(can(you.role, "lock") || can(you.role, "end_room"))) {
      this.modEl.replaceChildren();
      return;
    }
    const locked = this.client.snap.info.locked;
    replaceKeepingFocus(
      this.modEl,
      h(
        "section",
        { class: "panel", "aria-labelledby": "mod-heading", "data-testid": "mod-panel" },
        h("h2", { id: "mod-heading" }, t("mod.title")),
        h(
          "div",
          { class: "row" },
          can(you.role, "lock")
            ? h(
                "button",
                {
                  type: "button",
                  class: "button",
                  "data-key": "lock",
                  "data-testid": "lock",
                  "aria-pressed": String(locked),
                  onclick: () => this.command({ type: locked ? "unlock" : "lock" }),
                },
                locked ? t("mod.unlock") : t("mod.lock"),
              )
            : null,
          can(you.role, "end_room")
            ? h(
                "button",
                {
                  type: "button",
                  class: "button button-danger",
                  "data-key": "end",
                  "data-testid": "end-room",
                  onclick: () => {
                    if (window.confirm(t("confirm.end"))) this.command({ type: "end_room" });
                  },
                },
                t("mod.end"),
              )
            : null,
        ),
        h("p", { class: "muted small" }, t("mod.hint")),
      ),
    );
  }

  renderControls() {
    const c = this.client;
    if (!c?.snap?.you || c.phase === "closed") return;
    const you = c.snap.you;
    const items = [];
    if (can(you.role, "publish")) {
      const forced = you.mute_forced;
      items.push(
        h(
          "button",
          {
            type: "button",
            class: `button mic${you.muted ? "" : " mic-live"}`,
            "data-key": "mic",
            "data-testid": "mic",
            "aria-pressed": String(!you.muted),
            disabled: forced || undefined,
            onclick: () => this.toggleMic(),
          },
          icon(you.muted ? MIC_OFF : MIC_ON),
          forced ? t("controls.muted_by_mod") : you.muted ? t("controls.unmute") : t("controls.mute"),
        ),
      );
    }
    if (can(you.role, "raise_hand")) {
      const up = you.hand_position != null;
      items.push(
        h(
          "button",
          {
            type: "button",
            class: `button${up ? " button-active" : " button-primary"}`,
            "data-key": "hand",
            "data-testid": "hand",
            "aria-pressed": String(up),
            onclick: () => {
              audioOutput.unlock();
              this.command({ type: up ? "lower_hand" : "raise_hand" });
            },
          },
          up ? t("controls.lower_hand") : t("controls.raise_hand"),
        ),
      );
      if (up) {
        items.push(
          h(
            "span",
            { class: "queue-place", "data-testid": "queue-position", "aria-live": "polite" },
            t("controls.queue_position", { position: you.hand_position }),
          ),
        );
      }
    }
    if (can(you.role, "step_down")) {
      items.push(
        h(
          "button",
          {
            type: "button",
            class: "button",
            "data-key": "step-down",
            "data-testid": "step-down",
            onclick: () => this.command({ type: "step_down" }),
          },
          t("controls.step_down"),
        ),
      );
    }
    items.push(
      h(
        "button",
        {
          type: "button",
          class: "button button-danger leave",
          "data-key": "leave",
          "data-testid": "leave",
          onclick: () => this.leave(),
        },
        t("controls.leave"),
      ),
    );
    replaceKeepingFocus(this.controlsEl, items);
  }

  async toggleMic() {
    audioOutput.unlock();
    const you = this.client.snap.you;
    if (you.muted) {
      if (!this.media.micTrack) {
        await this.media.setOnStage(true);
        if (!this.media.micTrack) return; // the notice says why
      }
      await this.command({ type: "unmute" });
    } else {
      this.media.setMuted(true); // stop sending at once, before the server agrees
      await this.command({ type: "mute" });
    }
  }

  async leave() {
    await this.client.leave();
    this.media.close();
    location.hash = "#/";
  }

  async command(cmd) {
    try {
      await this.client.request(cmd);
      return true;
    } catch (err) {
      showError(err);
      this.syncMedia();
      return false;
    }
  }

  /** Tell the user about things that happen to them. */
  announce(ev) {
    const you = this.client.snap?.you;
    if (!you || ev.user_id !== you.user_id) return;
    if (ev.type === "mute_changed" && ev.forced && ev.by !== you.user_id) toast(t("notice.force_muted"), "info");
    if (ev.type === "mute_changed" && !ev.forced && ev.muted && ev.by !== you.user_id) {
      toast(t("notice.may_speak"), "info");
    }
    if (ev.type === "role_changed" && ev.role === "listener" && ev.by !== you.user_id) {
      toast(t("notice.moved_to_audience"), "info");
    }
    if (ev.type === "role_changed" && ev.role === "host" && ev.previous !== "host") toast(t("notice.now_host"), "info");
    if (ev.type === "role_changed" && ev.role === "moderator" && ev.previous !== "host") {
      toast(t("notice.now_moderator"), "info");
    }
  }

  renderStatus() {
    const c = this.client;
    if (!c || this.destroyed) return;
    const notices = [];
    let status = null;
    let kind = "info";
    if (c.phase === "connecting") {
      status = c.attempt ? t("status.reconnecting") : t("status.joining");
      kind = c.attempt ? "warn" : "info";
    } else if (c.phase === "waiting") {
      const seconds = Math.max(1, Math.ceil((c.reconnectAt - Date.now()) / 1000));
      status = t("status.lost", { seconds });
      kind = "warn";
    } else if (c.phase === "live") {
      const m = this.media?.state;
      if (m === "connecting") status = t("status.audio_connecting");
      else if (m === "reconnecting") {
        status = t("status.audio_reconnecting");
        kind = "warn";
      }
    }
    setStatus(status, kind);
    if (c.phase === "waiting") {
      notices.push(
        h(
          "div",
          { class: "notice notice-warn", "data-testid": "reconnecting" },
          h("span", {}, status),
          h(
            "button",
            {
              type: "button",
              class: "button button-small",
              "data-key": "reconnect-now",
              onclick: () => c.reconnectNow(),
            },
            t("status.reconnect_now"),
          ),
        ),
      );
    }
    if (c.phase === "live" && audioOutput.blocked) {
      notices.push(
        h(
          "div",
          { class: "notice" },
          h(
            "button",
            {
              type: "button",
              class: "button button-primary",
              "data-key": "enable-audio",
              "data-testid": "enable-audio",
              onclick: () => audioOutput.unlock(),
            },
            t("audio.enable"),
          ),
        ),
      );
    }
    const micError = this.media?.micError;
    if (c.phase === "live" && micError && this.media.wantMic) {
      notices.push(
        h(
          "div",
          { class: "notice notice-warn", role: "alert", "data-testid": "mic-error" },
          h("span", {}, t(MIC_KEYS[micError] || "mic.other")),
          h(
            "button",
            {
              type: "button",
              class: "button button-small",
              "data-key": "mic-retry",
              onclick: () => this.media.setOnStage(true),
            },
            t("mic.retry"),
          ),
        ),
      );
    }
    replaceKeepingFocus(this.noticeEl, notices);
  }

  renderClosed() {
    const why = this.client.closedWhy;
    this.media?.close();
    setStatus(null);
    clearInterval(this.tick);
    let text = t(CLOSED_KEYS[why.code] || "closed.other");
    // How long until a kicked user may come back: from the join refusal, or from the
    // participant_kicked event that came just before the bye.
    let wait = why.retryAfter;
    if (wait == null && why.code === "kicked" && this.client.kickedUntil) {
      wait = this.client.kickedUntil - Date.now() / 1000;
    }
    if (why.code === "kicked" && wait > 0) {
      text = `${text} ${t("closed.retry_after", { minutes: Math.max(1, Math.ceil(wait / 60)) })}`;
    }
    const back = h("a", { class: "button button-primary", href: "#/", "data-testid": "back-to-lobby" }, t("closed.back"));
    this.root.replaceChildren(
      h(
        "section",
        { class: "panel closed", role: "alert", "data-testid": "closed" },
        h("h1", {}, this.client.snap?.info?.title || t("closed.title")),
        h("p", { class: "closed-reason", "data-testid": "closed-reason", dataset: { code: why.code } }, text),
        why.message && why.code !== "left" ? h("p", { class: "muted small" }, why.message) : null,
        back,
      ),
    );
    back.focus();
  }
}
