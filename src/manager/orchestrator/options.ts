import { randomBytes } from "node:crypto";

import { systemClock, type Clock } from "../../common/clock.js";
import type { Logger } from "../../common/logger.js";
import { createIdGenerator } from "../objects/index.js";
import type { MemoryStore } from "../store/index.js";

/** What every orchestrator component is built from. */
export interface OrchestratorOptions {
  store: MemoryStore;
  logger: Logger;
  /** systemClock when absent. */
  clock?: Clock;
  /** Makes ids for new tasks; random 128-bit ids when absent. */
  newId?: () => string;
}

export interface ResolvedOrchestratorOptions {
  store: MemoryStore;
  logger: Logger;
  clock: Clock;
  newId: () => string;
}

export function resolveOrchestratorOptions(options: OrchestratorOptions, component: string): ResolvedOrchestratorOptions {
  return {
    store: options.store,
    logger: options.logger.child({ component }),
    clock: options.clock ?? systemClock,
    newId: options.newId ?? createIdGenerator((size) => randomBytes(size)),
  };
}
