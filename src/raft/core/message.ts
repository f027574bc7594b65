import type { Entry, Message, MessageType, NodeId } from "./types.js";

const emptyBytes = new Uint8Array(0);
/** Shared by every message that carries none; messages are immutable. */
const noEntries: readonly Entry[] = Object.freeze([]);

/**
 * A message from `from` in `term`, with every other field the caller left out set to its
 * zero value. Built as one object, field by field (no spreads): a leader makes several per
 * proposal, and their garbage drives its GC pauses.
 */
export function messageFrom(from: NodeId, term: number, fields: Partial<Message> & Pick<Message, "type" | "to">): Message {
  return {
    type: fields.type,
    from,
    to: fields.to,
    term,
    logTerm: fields.logTerm ?? 0,
    index: fields.index ?? 0,
    entries: fields.entries ?? noEntries,
    commit: fields.commit ?? 0,
    snapshot: fields.snapshot ?? null,
    reject: fields.reject ?? false,
    rejectHint: fields.rejectHint ?? 0,
    context: fields.context ?? emptyBytes,
  };
}

/** A message with every field the caller left out set to its zero value. */
export function newMessage(fields: Partial<Message> & Pick<Message, "type" | "from" | "to">): Message {
  return messageFrom(fields.from, fields.term ?? 0, fields);
}

/** Messages the core generates for itself; a peer must never send them. */
export function isLocalMessageType(type: MessageType): boolean {
  return type === "hup" || type === "beat" || type === "unreachable" || type === "snap-status" || type === "check-quorum";
}

/** Answers to a request: they carry no information unless their sender is a known peer. */
export function isResponseMessageType(type: MessageType): boolean {
  return (
    type === "app-resp" ||
    type === "vote-resp" ||
    type === "pre-vote-resp" ||
    type === "heartbeat-resp" ||
    type === "read-index-resp" ||
    type === "unreachable" ||
    type === "snap-status"
  );
}

export function voteResponseType(type: "vote" | "pre-vote"): "vote-resp" | "pre-vote-resp" {
  return type === "vote" ? "vote-resp" : "pre-vote-resp";
}
