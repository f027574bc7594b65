import { GlobalOrchestrator } from "./global.js";
import type { OrchestratorOptions } from "./options.js";
import { TaskReaper } from "./reaper.js";
import { ReplicatedOrchestrator } from "./replicated.js";
import { RestartSupervisor } from "./restart.js";
import { Updater } from "./updater.js";

/**
 * Runs the replicated and global orchestrators, the restart supervisor, the task reaper and the updater
 * on one store until `signal` fires (a manager runs them while it leads). They share
 * nothing but the store. Resolves once all of them have stopped.
 */
export async function runOrchestrators(options: OrchestratorOptions, signal: AbortSignal): Promise<void> {
  const components = [new ReplicatedOrchestrator(options), new GlobalOrchestrator(options), new RestartSupervisor(options), new TaskReaper(options), new Updater(options)];
  await Promise.all(components.map((component) => component.run(signal)));
}
