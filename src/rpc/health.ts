import type { HealthHandlers } from "../gen/shoal/v1/Health.js";
import type { HealthCheckResponse } from "../gen/shoal/v1/HealthCheckResponse.js";

type ServingStatus = NonNullable<HealthCheckResponse["status"]>;

/** What the Health service asks of the daemon: the status of the whole or of one part. */
export interface HealthSource {
  readonly nodeId: string;
  readonly version: string;
  /** `component` is "" for the daemon as a whole; undefined means no such component. */
  status(component: string): "serving" | "not-serving" | undefined;
}

export function createHealthHandlers(source: HealthSource): HealthHandlers {
  return {
    Check(call, callback) {
      const status = source.status(call.request.service);
      const serving: ServingStatus =
        status === undefined ? "SERVICE_UNKNOWN" : status === "serving" ? "SERVING" : "NOT_SERVING";
      callback(null, { status: serving, nodeId: source.nodeId, version: source.version });
    },
  };
}
