export { GlobalOrchestrator } from "./global.js";
export type { OrchestratorOptions } from "./options.js";
export { slotTasksToDelete, TaskReaper } from "./reaper.js";
export { reconciledChannel, reconcileRetryDelayMs, reconcileRetryDelayMsMax, runReconcileLoop } from "./reconcile-loop.js";
export type { ReconciledMessage, ReconcileLoopOptions, Reconciler } from "./reconcile-loop.js";
export { runOrchestrators } from "./orchestrators.js";
export { ReplicatedOrchestrator } from "./replicated.js";
export { delayedStartRetryMs, delayedStartsMax, replaceTask, restartConditionMet, restartsCounted, RestartSupervisor } from "./restart.js";
export { applyTaskActions, removeServiceTasksActions, setDesiredStateAction } from "./service-tasks.js";
export type { TaskAction } from "./service-tasks.js";
export { isHistoricTask, isLiveTask, isNodeUsable, newServiceTask, taskCreatedState, taskSlotKey } from "./task.js";
export type { NewTaskOptions } from "./task.js";
export {
  activeUpdateConfig,
  describeTaskFailure,
  isTaskCurrent,
  isTaskDone,
  isTaskFailed,
  planServiceUpdate,
  updateFailuresNamedMax,
  updateSlotsPerPassMax,
} from "./update-plan.js";
export type { NewSlotTask, UpdatePlan, UpdatePlanInput } from "./update-plan.js";
export { Updater, updaterRetryDelayMs, updaterRunningSinceMax, updateStatusChannel } from "./updater.js";
export type { UpdateStatusMessage } from "./updater.js";
