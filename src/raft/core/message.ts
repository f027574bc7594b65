import type { Message, MessageType } from "./types.js";

const emptyBytes = new Uint8Array(0);

/** A message with every field the caller left out set to its zero value. */
export function newMessage(fields: Partial<Message> & Pick<Message, "type" | "from" | "to">): Message {
  return {
    term: 0,
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 0,
    snapshot: null,
    reject: false,
    rejectHint: 0,
    context: emptyBytes,
    ...fields,
  };
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
