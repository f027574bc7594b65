// The raft package's public surface: the driver (RaftNode), its transport and storage.
// The pure core lives in ./core and is used through RaftNode.
export type {
  ConfChange,
  ConfState,
  Entry,
  HardState,
  Message,
  NodeId,
  Snapshot,
  StateRole,
} from "./core/index.js";
export {
  leaderChangedChannel,
  NotLeaderError,
  proposalBytesMax,
  RaftNode,
  tickMsDefault,
  electionTicksDefault,
  heartbeatTicksDefault,
} from "./node.js";
export type { AppliedEntry, LeaderChange, RaftMember, RaftNodeOptions, RaftNodeStatus, StateMachine } from "./node.js";
export { confStateAfter, forceNewCluster } from "./node/force-new-cluster.js";
export type { SnapshotBytes } from "./node/envelope.js";
export type { ForceNewClusterOptions, ForceNewClusterResult } from "./node/force-new-cluster.js";
export { Snapshotter } from "./snap/index.js";
export { createGrpcRaftTransport } from "./transport/index.js";
export type { GrpcRaftTransportOptions, RaftPeerCall, RaftTransport, RaftTransportHandler } from "./transport/index.js";
export { DiskLogStorage, WalCorruptionError, WalSyncError, WriteAheadLog } from "./wal/index.js";
