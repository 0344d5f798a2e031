// The conversation log, applied: message entries become messages, change entries change them.
// Pure functions on plain objects (a changed message is a new object, so listeners can keep the old one).

export const CHANGE_KINDS = new Set(["edit", "delete", "reaction"]);

export function isChange(entry) {
  return CHANGE_KINDS.has(entry.kind);
}

/** A message in the shape of REST history, whatever the server version filled in. */
export function normalizeMessage(message, myId) {
  return {
    ...message,
    edited_at: message.edited_at ?? null,
    deleted: message.deleted ?? false,
    reactions: (message.reactions ?? []).map((r) => ({ ...r, me: r.user_ids.includes(myId) })),
    reply_to: message.reply_to ?? null,
    attachments: message.attachments ?? [],
  };
}

/** The message after one change entry. */
export function applyChange(message, entry, myId) {
  switch (entry.kind) {
    case "edit":
      if (message.deleted) return message;
      return { ...message, body: entry.body, edited_at: entry.created_at };
    case "delete":
      return { ...message, body: null, deleted: true, reactions: [], attachments: [] };
    case "reaction":
      return { ...message, reactions: applyReaction(message.reactions, entry, myId) };
    default:
      return message;
  }
}

function applyReaction(reactions, entry, myId) {
  const userId = entry.sender_id ?? entry.user_id;
  const out = reactions.map((r) => ({ ...r, user_ids: [...r.user_ids] }));
  let reaction = out.find((r) => r.emoji === entry.emoji);
  if (entry.added) {
    if (!reaction) {
      reaction = { emoji: entry.emoji, count: 0, user_ids: [], me: false };
      out.push(reaction); // first-reacted order: a new emoji goes last
    }
    if (!reaction.user_ids.includes(userId)) reaction.user_ids.push(userId);
  } else if (reaction) {
    reaction.user_ids = reaction.user_ids.filter((id) => id !== userId);
  }
  return out
    .filter((r) => r.user_ids.length > 0)
    .map((r) => ({ ...r, count: r.user_ids.length, me: r.user_ids.includes(myId) }));
}
