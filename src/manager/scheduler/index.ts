export {
  needsPlacement,
  passIntervalMs,
  passRetryDelayMs,
  passRetryDelayMsMax,
  Scheduler,
  taskAssignedChannel,
} from "./scheduler.js";
export type { SchedulerOptions, TaskAssignedMessage } from "./scheduler.js";
