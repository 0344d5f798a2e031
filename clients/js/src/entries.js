// The conversation log, applied (docs/protocol.md "Applying the log"): message entries become
// messages, change entries change them. Pure functions on plain objects: a changed message is a new
// object, so a listener may keep the old one.

export const CHANGE_KINDS = new Set(["edit", "delete", "reaction"]);
const EXCERPT_CODE_POINTS = 100;

export function isChange(entry) {
  return CHANGE_KINDS.has(entry.kind);
}

/** A message in the shape of REST history, whatever the server version filled in; `me` computed for myId. */
export function normalizeMessage(message, myId) {
  return {
    ...message,
    edited_at: message.edited_at ?? null,
    deleted: message.deleted ?? false,
    // `me` is absent from room broadcasts (the same bytes for every member): compute it.
    reactions: (message.reactions ?? []).map((r) => ({ ...r, me: r.user_ids.includes(myId) })),
    reply_to: message.reply_to ?? null,
    attachments: message.attachments ?? [],
  };
}

/** Whether the message's current state already reflects entry (a sync page brings current states first). */
export function reflects(message, entry) {
  return entry.seq <= (message.state_seq ?? message.seq);
}

/** The message after one change entry (its state_seq becomes the entry's seq). */
export function applyChange(message, entry, myId) {
  let next;
  switch (entry.kind) {
    case "edit":
      next = message.deleted ? message : { ...message, body: entry.body, edited_at: entry.created_at };
      break;
    case "delete":
      next = { ...message, body: null, deleted: true, edited_at: null, reactions: [], reply_to: null, attachments: [] };
      break;
    case "reaction":
      next = { ...message, reactions: applyReaction(message.reactions, entry, myId) };
      break;
    default:
      return message;
  }
  return { ...next, state_seq: entry.seq };
}

/** A reply's excerpt of its target's body: the first 100 Unicode code points, null once deleted. */
export function excerpt(body) {
  if (body == null) return null;
  return Array.from(body).slice(0, EXCERPT_CODE_POINTS).join("");
}

function applyReaction(reactions, entry, myId) {
  const userId = entry.sender_id;
  const out = reactions.map((r) => ({ ...r, user_ids: [...r.user_ids] }));
  let reaction = out.find((r) => r.emoji === entry.emoji);
  if (entry.added) {
    if (!reaction) {
      reaction = { emoji: entry.emoji, count: 0, user_ids: [], me: false };
      out.push(reaction); // first-reacted order: an emoji joins the end when its count goes 0 -> 1
    }
    if (!reaction.user_ids.includes(userId)) reaction.user_ids.push(userId);
  } else if (reaction) {
    reaction.user_ids = reaction.user_ids.filter((id) => id !== userId);
  }
  return out
    .filter((r) => r.user_ids.length > 0)
    .map((r) => ({ ...r, count: r.user_ids.length, me: r.user_ids.includes(myId) }));
}
