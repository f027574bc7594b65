export { followRescanMs, LogBroker, publishLinesMax, resolveLogTasks, subscriptionQueueLinesMax, subscriptionsMax, subscriptionTasksMax } from "./broker.js";
export type { LogBrokerOptions, LogTask, SubscriptionEvent, WorkerLogOptions } from "./broker.js";
export { createManagerLogs } from "./manager-logs.js";
export type { LogsManager, ManagerLogs } from "./manager-logs.js";
export { createLeaderLogSource, relayQueueLinesMax } from "./remote.js";
export type { LeaderLogSourceOptions } from "./remote.js";
export { createLogBrokerService, relayBatchLinesMax } from "./service.js";
export type { LogBrokerServiceOptions } from "./service.js";
export { logIdLengthMax, logLineWireBytesMax, parseWireLogMessage, parseWireOptions, parseWireSelector, toWireLogMessage, toWireOptions, toWireSelector } from "./wire.js";
