import { dockerFields, present, setDefined } from "./json.js";

/**
 * Reads Docker's NodeSpec (Name, Labels, Role, Availability) into the node spec fields it
 * sets; the control API checks the values. Docker sends the whole spec on update.
 */
export function readDockerNodeSpec(value: unknown): Record<string, unknown> {
  const fields = dockerFields(value, "Spec", ["Name", "Labels", "Role", "Availability"]);
  const spec: Record<string, unknown> = {};
  setDefined(spec, "name", present(fields, "Name"));
  setDefined(spec, "labels", present(fields, "Labels"));
  setDefined(spec, "role", present(fields, "Role"));
  setDefined(spec, "availability", present(fields, "Availability"));
  return spec;
}
