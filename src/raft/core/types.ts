/**
 * The data model of the raft core, after etcd's raftpb. Terms and indexes are plain numbers:
 * they stay far below 2^53 for any cluster's lifetime. Entry and snapshot payloads are opaque
 * bytes that raft never interprets.
 */

export type NodeId = number;

/** Node id 0 means "nobody" (no vote, no leader). */
export const noneId: NodeId = 0;

export type EntryType = "normal" | "conf-change";

export interface Entry {
  readonly term: number;
  readonly index: number;
  readonly type: EntryType;
  /** Empty for the no-op a new leader appends. For "conf-change", an encoded ConfChange. */
  readonly data: Uint8Array;
}

/** What must be durable before any message that depends on it is sent. */
export interface HardState {
  readonly term: number;
  readonly vote: NodeId;
  readonly commit: number;
}

export const emptyHardState: HardState = { term: 0, vote: noneId, commit: 0 };

/** Membership: voters vote and count for quorum; learners only receive the log. */
export interface ConfState {
  readonly voters: readonly NodeId[];
  readonly learners: readonly NodeId[];
  /**
   * Ids removed from the cluster. They are never let back in, and messages from them are
   * dropped, so the set must survive snapshots. Absent means none (older snapshots).
   */
  readonly removed?: readonly NodeId[];
}

export type ConfChangeType = "add-voter" | "add-learner" | "remove-node";

export interface ConfChange {
  readonly type: ConfChangeType;
  readonly nodeId: NodeId;
  /** Opaque to raft: the driver uses it to carry the member's address. */
  readonly context: Uint8Array;
}

export interface SnapshotMetadata {
  readonly index: number;
  readonly term: number;
  readonly confState: ConfState;
}

export interface Snapshot {
  readonly metadata: SnapshotMetadata;
  /** The state machine's serialized state as of metadata.index. */
  readonly data: Uint8Array;
}

export type MessageType =
  | "hup" // local: start an election
  | "beat" // local: leader sends heartbeats
  | "prop" // proposal forwarded to the leader
  | "app" // append entries
  | "app-resp"
  | "vote"
  | "vote-resp"
  | "pre-vote"
  | "pre-vote-resp"
  | "snap" // install snapshot
  | "heartbeat"
  | "heartbeat-resp"
  | "unreachable" // local: the transport could not reach `from`
  | "snap-status" // local: snapshot delivery finished (reject = failed)
  | "check-quorum" // local
  | "transfer-leader"
  | "timeout-now"
  | "read-index"
  | "read-index-resp";

export interface Message {
  readonly type: MessageType;
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: number;
  /** Term of the entry at `index` (append: the entry before `entries`). */
  readonly logTerm: number;
  readonly index: number;
  readonly entries: readonly Entry[];
  readonly commit: number;
  readonly snapshot: Snapshot | null;
  readonly reject: boolean;
  /** On a rejected append: the follower's hint for fast backtracking. */
  readonly rejectHint: number;
  /** ReadIndex request id and similar opaque context. */
  readonly context: Uint8Array;
}

export type StateRole = "follower" | "pre-candidate" | "candidate" | "leader";

/** Volatile state worth reporting; never persisted. */
export interface SoftState {
  readonly leader: NodeId;
  readonly role: StateRole;
}

/** The answer to a ReadIndex request: reads may be served once `index` is applied. */
export interface ReadState {
  readonly index: number;
  readonly requestContext: Uint8Array;
}

/**
 * Everything the driver must act on, in this order: persist `snapshot`, `entries` and
 * `hardState` (fsync), then send `messages`, then apply `snapshot` and `committedEntries`
 * to the state machine, then call `advance()`.
 */
export interface Ready {
  readonly softState: SoftState | null;
  readonly hardState: HardState | null;
  readonly readStates: readonly ReadState[];
  readonly entries: readonly Entry[];
  readonly snapshot: Snapshot | null;
  readonly committedEntries: readonly Entry[];
  readonly messages: readonly Message[];
}
