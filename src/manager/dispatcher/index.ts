export { AssignmentSet, assignedTasks, concernsNode, isAssignedTo } from "./assignments.js";
export type { AssignmentDelta } from "./assignments.js";
export {
  assignmentsMessageBytesMax,
  createDispatcher,
  heartbeatGracePeriods,
  heartbeatJitterFraction,
  leaderAddressMetadataKey,
  leaderStartGracePeriods,
  nodeDownChannel,
  sessionStartedChannel,
} from "./dispatcher.js";
export type { CallerIdentity, Dispatcher, DispatcherCall, DispatcherOptions, ManagerPeerAddress } from "./dispatcher.js";
export {
  buildNetworkMap,
  encodeNetworkMap,
  isTaskReady,
  networkMapBytesMax,
  networkMapIntervalMs,
  parseNetworkMap,
  trafficPolicyLabel,
} from "./network-map.js";
export type { NetworkMap, NetworkMapNetwork, NetworkMapNode, NetworkMapService, NetworkMapTask } from "./network-map.js";
export { pendingStatusUpdatesMax, statusFlushIntervalMs } from "./status-batcher.js";
export { encodeTask, parseNodeDescription, parseStatusUpdates, statusUpdatesPerRequestMax } from "./wire.js";
export type { StatusUpdate } from "./wire.js";
