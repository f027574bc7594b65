import { InvalidArgumentError } from "../../common/errors.js";
import type { ConfState, Entry, EntryType, Message, MessageType, Snapshot } from "../core/types.js";
import type { RaftEntry, RaftEntry__Output } from "../../gen/shoal/v1/RaftEntry.js";
import type { RaftEntryType__Output } from "../../gen/shoal/v1/RaftEntryType.js";
import type { RaftMessage, RaftMessage__Output } from "../../gen/shoal/v1/RaftMessage.js";
import type { RaftMessageType__Output } from "../../gen/shoal/v1/RaftMessageType.js";
import type { RaftSnapshot, RaftSnapshot__Output } from "../../gen/shoal/v1/RaftSnapshot.js";

/**
 * Conversion between the raft core's messages and their protobuf form. Decoding treats the
 * wire form as untrusted: every number must be a non-negative safe integer and every enum a
 * known value, or the whole message is refused with InvalidArgumentError.
 */

const messageTypeToWire: Record<MessageType, RaftMessageType__Output> = {
  hup: "RAFT_MESSAGE_TYPE_HUP",
  beat: "RAFT_MESSAGE_TYPE_BEAT",
  prop: "RAFT_MESSAGE_TYPE_PROP",
  app: "RAFT_MESSAGE_TYPE_APP",
  "app-resp": "RAFT_MESSAGE_TYPE_APP_RESP",
  vote: "RAFT_MESSAGE_TYPE_VOTE",
  "vote-resp": "RAFT_MESSAGE_TYPE_VOTE_RESP",
  "pre-vote": "RAFT_MESSAGE_TYPE_PRE_VOTE",
  "pre-vote-resp": "RAFT_MESSAGE_TYPE_PRE_VOTE_RESP",
  snap: "RAFT_MESSAGE_TYPE_SNAP",
  heartbeat: "RAFT_MESSAGE_TYPE_HEARTBEAT",
  "heartbeat-resp": "RAFT_MESSAGE_TYPE_HEARTBEAT_RESP",
  unreachable: "RAFT_MESSAGE_TYPE_UNREACHABLE",
  "snap-status": "RAFT_MESSAGE_TYPE_SNAP_STATUS",
  "check-quorum": "RAFT_MESSAGE_TYPE_CHECK_QUORUM",
  "transfer-leader": "RAFT_MESSAGE_TYPE_TRANSFER_LEADER",
  "timeout-now": "RAFT_MESSAGE_TYPE_TIMEOUT_NOW",
  "read-index": "RAFT_MESSAGE_TYPE_READ_INDEX",
  "read-index-resp": "RAFT_MESSAGE_TYPE_READ_INDEX_RESP",
};

function isMessageType(value: string): value is MessageType {
  return Object.hasOwn(messageTypeToWire, value);
}

const messageTypeFromWire = new Map<string, MessageType>();
for (const [local, wire] of Object.entries(messageTypeToWire)) {
  if (isMessageType(local)) messageTypeFromWire.set(wire, local);
}

/** Message types that only ever travel inside one node; a peer sending one is misbehaving. */
const localMessageTypes: ReadonlySet<MessageType> = new Set(["hup", "beat", "unreachable", "snap-status", "check-quorum"]);

const entryTypeToWire: Record<EntryType, RaftEntryType__Output> = {
  normal: "RAFT_ENTRY_TYPE_NORMAL",
  "conf-change": "RAFT_ENTRY_TYPE_CONF_CHANGE",
};

function wireNumber(value: unknown, field: string): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw new InvalidArgumentError(`raft message field ${field} is not a non-negative safe integer`);
  }
  return value;
}

function wireBytes(value: unknown, field: string): Uint8Array {
  if (!(value instanceof Uint8Array)) throw new InvalidArgumentError(`raft message field ${field} is not bytes`);
  return value;
}

export function entryToWire(entry: Entry): RaftEntry {
  return { term: entry.term, index: entry.index, type: entryTypeToWire[entry.type], data: entry.data };
}

export function entryFromWire(wire: RaftEntry__Output): Entry {
  let type: EntryType;
  if (wire.type === "RAFT_ENTRY_TYPE_NORMAL") type = "normal";
  else if (wire.type === "RAFT_ENTRY_TYPE_CONF_CHANGE") type = "conf-change";
  else throw new InvalidArgumentError(`unknown raft entry type ${String(wire.type)}`);
  return {
    term: wireNumber(wire.term, "entry.term"),
    index: wireNumber(wire.index, "entry.index"),
    type,
    data: wireBytes(wire.data, "entry.data"),
  };
}

function snapshotToWire(snapshot: Snapshot, includeData: boolean): RaftSnapshot {
  const { metadata } = snapshot;
  return {
    metadata: {
      index: metadata.index,
      term: metadata.term,
      confState: { voters: [...metadata.confState.voters], learners: [...metadata.confState.learners], removed: [...(metadata.confState.removed ?? [])] },
    },
    data: includeData ? snapshot.data : Buffer.alloc(0),
  };
}

function snapshotFromWire(wire: RaftSnapshot__Output): Snapshot {
  const metadata = wire.metadata;
  if (metadata === null) throw new InvalidArgumentError("raft snapshot without metadata");
  const confState: ConfState = {
    voters: (metadata.confState?.voters ?? []).map((id) => wireNumber(id, "snapshot.voters")),
    learners: (metadata.confState?.learners ?? []).map((id) => wireNumber(id, "snapshot.learners")),
    ...(metadata.confState !== null && metadata.confState.removed.length > 0 ? { removed: metadata.confState.removed.map((id) => wireNumber(id, "snapshot.removed")) } : {}),
  };
  return {
    metadata: {
      index: wireNumber(metadata.index, "snapshot.index"),
      term: wireNumber(metadata.term, "snapshot.term"),
      confState,
    },
    data: wireBytes(wire.data, "snapshot.data"),
  };
}

/** The wire form; `includeSnapshotData: false` leaves the data for chunked transfer. */
export function messageToWire(message: Message, options: { includeSnapshotData: boolean }): RaftMessage {
  return {
    type: messageTypeToWire[message.type],
    from: message.from,
    to: message.to,
    term: message.term,
    logTerm: message.logTerm,
    index: message.index,
    entries: message.entries.map(entryToWire),
    commit: message.commit,
    snapshot: message.snapshot === null ? null : snapshotToWire(message.snapshot, options.includeSnapshotData),
    reject: message.reject,
    rejectHint: message.rejectHint,
    context: message.context,
  };
}

export function messageFromWire(wire: RaftMessage__Output): Message {
  const type = messageTypeFromWire.get(wire.type);
  if (type === undefined || localMessageTypes.has(type)) {
    throw new InvalidArgumentError(`raft message type ${String(wire.type)} is not accepted from a peer`);
  }
  if (typeof wire.reject !== "boolean") throw new InvalidArgumentError("raft message field reject is not a boolean");
  if (!Array.isArray(wire.entries)) throw new InvalidArgumentError("raft message field entries is not a list");
  return {
    type,
    from: wireNumber(wire.from, "from"),
    to: wireNumber(wire.to, "to"),
    term: wireNumber(wire.term, "term"),
    logTerm: wireNumber(wire.logTerm, "logTerm"),
    index: wireNumber(wire.index, "index"),
    entries: wire.entries.map(entryFromWire),
    commit: wireNumber(wire.commit, "commit"),
    snapshot: wire.snapshot === null ? null : snapshotFromWire(wire.snapshot),
    reject: wire.reject,
    rejectHint: wireNumber(wire.rejectHint, "rejectHint"),
    context: wireBytes(wire.context, "context"),
  };
}

/** A cheap upper bound of a message's encoded size, to cut batches below the gRPC limit. */
export function messageSizeBytesEstimate(message: Message): number {
  let bytes = 96 + message.context.length;
  for (const entry of message.entries) bytes += 32 + entry.data.length;
  return bytes;
}
