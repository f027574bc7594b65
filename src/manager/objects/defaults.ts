import type { ClusterSpec, HealthConfig, RestartPolicy, UpdateConfig } from "./types.js";

/** Swarm uses the same defaults for updates and rollbacks. */
const updateDefaults = {
  parallelism: 1,
  delayMs: 0,
  failureAction: "pause",
  monitorMs: 5_000,
  maxFailureRatio: 0,
  order: "stop-first",
} as const satisfies UpdateConfig;

/** Defaults like swarm's, filled in wherever a spec leaves a field out. */
export const serviceDefaults = {
  replicas: 1,
  restartPolicy: { condition: "any", delayMs: 5_000, maxAttempts: 0, windowMs: 0 } satisfies RestartPolicy,
  updateConfig: updateDefaults,
  rollbackConfig: updateDefaults,
  stopGracePeriodMs: 10_000,
  /** Empty: the image's stop signal, else SIGTERM (the engine decides). */
  stopSignal: "",
  healthcheck: { intervalMs: 30_000, timeoutMs: 30_000, retries: 3, startPeriodMs: 0, startIntervalMs: 5_000 } satisfies Omit<HealthConfig, "test">,
} as const;

export const clusterDefaults: Omit<ClusterSpec, "name" | "labels"> = {
  taskHistoryRetentionLimit: 5,
  heartbeatPeriodMs: 1_000,
  snapshotIntervalEntries: 10_000,
  nodeCertExpiryMs: 90 * 24 * 60 * 60 * 1_000,
};
