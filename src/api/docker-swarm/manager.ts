import { UnavailableError } from "../../common/errors.js";
import { notManagerMessages } from "../../manager/controlapi/index.js";
import type { ClusterControl, ControlApi } from "../../manager/controlapi/index.js";

/**
 * The control API of a manager; on any other node UnavailableError (503) with docker's own
 * text, so docker clients print what they print against a docker engine.
 */
export function requireManager(control: ClusterControl): ControlApi {
  const membership = control.membership();
  if (membership === "none") throw new UnavailableError(notManagerMessages.none);
  if (membership === "worker") throw new UnavailableError(notManagerMessages.worker);
  return control.controlApi();
}
