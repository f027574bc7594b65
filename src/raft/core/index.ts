export { decodeConfChange, encodeConfChange, confChangeContextBytesMax } from "./conf-change.js";
export { entrySizeBytes, entryOverheadBytes, limitEntriesSize } from "./entry-size.js";
export { InvariantError, invariant } from "./invariant.js";
export { isLocalMessageType, newMessage } from "./message.js";
export type { ProgressState } from "./progress.js";
export {
  ProposalDroppedError,
  committedSizePerReadyBytesDefault,
  electionTicksDefault,
  heartbeatTicksDefault,
  maxInflightMsgsDefault,
  maxSizePerMsgBytesDefault,
} from "./raft.js";
export type { RaftConfig, RaftLogger } from "./raft.js";
export { pendingReadIndexRequestsMax } from "./read-only.js";
export { RawNode } from "./raw-node.js";
export type { ProgressStatus, RaftStatus } from "./raw-node.js";
export { emptyHardState, noneId } from "./types.js";
export type {
  ConfChange,
  ConfChangeType,
  ConfState,
  Entry,
  EntryType,
  HardState,
  Message,
  MessageType,
  NodeId,
  ReadState,
  Ready,
  Snapshot,
  SnapshotMetadata,
  SoftState,
  StateRole,
} from "./types.js";
