// Mirror of chatrooms/permissions.py: roles are presets of capabilities, and nobody acts
// on someone of equal or higher rank. Only used to decide which controls to show; the
// server checks everything again.

export const RANK = { listener: 0, speaker: 1, moderator: 2, host: 3 };

const LISTENER = ["listen", "raise_hand"];
const SPEAKER = ["listen", "publish", "step_down"];
const MODERATOR = [
  ...SPEAKER,
  "invite",
  "move_to_audience",
  "mute_others",
  "kick",
  "ban",
  "lock",
];
const HOST = [
  ...MODERATOR.filter((c) => c !== "step_down"),
  "manage_moderators",
  "end_room",
];

const CAPABILITIES = {
  listener: new Set(LISTENER),
  speaker: new Set(SPEAKER),
  moderator: new Set(MODERATOR),
  host: new Set(HOST),
};

export function can(role, capability) {
  return Boolean(role && CAPABILITIES[role]?.has(capability));
}

export function onStage(role) {
  return role === "host" || role === "moderator" || role === "speaker";
}

export function outranks(role, other) {
  return (RANK[role] ?? -1) > (RANK[other] ?? -1);
}

/** The moderation actions `actor` may take on `target` (a stage member or a listener). */
export function actionsOn(actor, target, stageFull) {
  if (!actor || !target || actor.user_id === target.user_id) return [];
  if (!outranks(actor.role, target.role)) return [];
  const out = [];
  const staged = onStage(target.role);
  if (!staged && can(actor.role, "invite") && !target.invited) out.push("invite");
  if (!staged && target.hand && can(actor.role, "invite")) out.push("dismiss");
  if (staged && can(actor.role, "move_to_audience")) out.push("move_to_audience");
  if (staged && can(actor.role, "mute_others")) {
    if (target.mute_forced) out.push("allow_speak");
    else out.push("force_mute");
  }
  if (can(actor.role, "manage_moderators")) {
    if (target.role === "moderator") out.push("remove_moderator");
    else if (staged || !stageFull) out.push("add_moderator");
  }
  if (can(actor.role, "kick")) out.push("kick");
  if (can(actor.role, "ban")) out.push("ban");
  return out;
}
