// The manager composition: raft + replicated store + CA + leader-only components, and the
// ways a daemon starts one (swarm init, swarm join with a manager token, restart).
//
// Daemon wiring: at start, `hasManagerState(dataDir)` ? `restartManager(...)`; on `swarm
// init` `initManager(...)`, on `swarm join` with a manager token `joinManager(...)`. Then
// serve `manager.grpcServices()` (plus Health) on ONE gRPC server on the advertised
// address with `manager.serverCredentials()`: the Raft transport and membership need the
// peer to join first, so the server starts after these resolve. REST requests a follower
// cannot serve go to `manager.forwardToLeader(...)`; the leader replays them with the
// executor given by `setForwardExecutor` (fastify inject). `leave()` and `close()` end it.
export { forceNewManagerCluster } from "./force-new-cluster.js";
export type { ForceNewClusterOptions, ForcedCluster } from "./force-new-cluster.js";
export { leadershipConfirmRetryMs } from "./leadership.js";
export type { TermComponent } from "./leadership.js";
export { forcedLeaveLeaderlessMsMax, leadershipTransferWaitMsMax, leaveRetryDelayMs, leaveTimeoutMs } from "./leave.js";
export type { Manager } from "./manager.js";
export { memberReconcileIntervalMs, progressCallTimeoutMs, promotionLagEntriesMax } from "./member-changes.js";
export { directoryMembersMax, memberAddressLengthMax, memberSuffrages, raftIdMax } from "./member-directory.js";
export type { ManagerMember, MemberSuffrage } from "./member-directory.js";
export { forwardBodyBytesMax, requestRaftJoin } from "./membership-service.js";
export type { ForwardedRequest, ForwardedResponse, ForwardExecutor, ForwardMethod, JoinAnswer } from "./membership-service.js";
export { encodeMemberEntry, encodeStoreEntry, ManagerStateMachine } from "./replicated-state.js";
export { hasManagerState, hostOfAddress, initLeadershipTimeoutMs, initManager, joinManager, restartManager } from "./start.js";
export type { InitManagerOptions, JoinManagerOptions, ManagerOptions } from "./start.js";
export { swarmLayout, swarmPaths } from "./state-file.js";
export type { ManagerState, SwarmPaths } from "./state-file.js";
export { managerCallTimeoutMs } from "./unary.js";
