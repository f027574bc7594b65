import { InvalidArgumentError } from "../../common/errors.js";
import type { LabelFilter, NodeFilters, NodeMembership, ServiceFilters, TaskFilters } from "../../manager/controlapi/index.js";
import { nodeMemberships } from "../../manager/controlapi/index.js";
import { isTaskState, nodeRoles } from "../../manager/objects/index.js";
import type { NodeRole, TaskState } from "../../manager/objects/index.js";

/** Largest `filters` parameter accepted, and most values across all its filters. */
export const filtersBytesMax = 64 * 1024;
export const filterValuesMax = 1_024;

export type DockerFilters = ReadonlyMap<string, readonly string[]>;

/**
 * Docker's `filters` query parameter: JSON `{"name":{"web":true}}` (or the older
 * `{"name":["web"]}`). Keys outside `allowed` are a 400 "invalid filter", as in docker.
 */
export function parseDockerFilters(text: string | undefined, allowed: readonly string[]): DockerFilters {
  const filters = new Map<string, string[]>();
  if (text === undefined || text === "") return filters;
  if (Buffer.byteLength(text) > filtersBytesMax) throw new InvalidArgumentError(`filters must be at most ${filtersBytesMax} bytes`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new InvalidArgumentError(`filters is not valid JSON: send {"key":{"value":true}}`, { cause: error });
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new InvalidArgumentError(`filters must be a JSON object like {"name":{"web":true}}`);
  let count = 0;
  for (const [key, value] of Object.entries(parsed)) {
    if (!allowed.includes(key)) throw new InvalidArgumentError(`invalid filter '${key}' (filters here: ${allowed.join(", ")})`);
    const values = filterValues(key, value);
    count += values.length;
    if (count > filterValuesMax) throw new InvalidArgumentError(`filters may hold at most ${filterValuesMax} values`);
    filters.set(key, values);
  }
  return filters;
}

function filterValues(key: string, value: unknown): string[] {
  if (Array.isArray(value) && value.every((item): item is string => typeof item === "string")) return value;
  if (typeof value === "object" && value !== null && !Array.isArray(value)) {
    return Object.entries(value).flatMap(([item, on]) => (on === true ? [item] : []));
  }
  throw new InvalidArgumentError(`filter '${key}' must be an object of values, like {"${key}":{"value":true}}`);
}

function labelFilters(values: readonly string[] | undefined): LabelFilter[] | undefined {
  if (values === undefined) return undefined;
  return values.map((value) => {
    const at = value.indexOf("=");
    return at < 0 ? { key: value } : { key: value.slice(0, at), value: value.slice(at + 1) };
  });
}

function choices<T extends string>(key: string, values: readonly string[] | undefined, allowed: readonly T[]): T[] | undefined {
  if (values === undefined) return undefined;
  return values.map((value) => {
    const found = allowed.find((candidate) => candidate === value);
    if (found === undefined) throw new InvalidArgumentError(`invalid ${key} filter '${value}': use one of ${allowed.join(", ")}`);
    return found;
  });
}

function setIf<T extends object, K extends keyof T>(target: T, key: K, value: Exclude<T[K], undefined> | undefined): void {
  if (value !== undefined) target[key] = value;
}

export const serviceFilterKeys = ["id", "label", "mode", "name"] as const;

export function serviceFiltersFrom(filters: DockerFilters): ServiceFilters {
  const out: ServiceFilters = {};
  setIf(out, "id", filters.get("id"));
  setIf(out, "name", filters.get("name"));
  setIf(out, "label", labelFilters(filters.get("label")));
  setIf(out, "mode", choices("mode", filters.get("mode"), ["replicated", "global"] as const));
  return out;
}

export const nodeFilterKeys = ["id", "label", "membership", "name", "node.label", "role"] as const;

export function nodeFiltersFrom(filters: DockerFilters): NodeFilters {
  const out: NodeFilters = {};
  setIf(out, "id", filters.get("id"));
  setIf(out, "name", filters.get("name"));
  setIf(out, "role", choices<NodeRole>("role", filters.get("role"), nodeRoles));
  setIf(out, "membership", choices<NodeMembership>("membership", filters.get("membership"), nodeMemberships));
  setIf(out, "label", labelFilters(filters.get("label")));
  setIf(out, "nodeLabel", labelFilters(filters.get("node.label")));
  return out;
}

export const taskFilterKeys = ["desired-state", "id", "label", "name", "node", "service", "_up-to-date"] as const;

export function taskFiltersFrom(filters: DockerFilters): TaskFilters {
  const desired = filters.get("desired-state")?.map((value): TaskState => {
    if (!isTaskState(value)) throw new InvalidArgumentError(`invalid desired-state filter '${value}': use running, shutdown or accepted`);
    return value;
  });
  const upToDate = filters.get("_up-to-date");
  const out: TaskFilters = {};
  setIf(out, "service", filters.get("service"));
  setIf(out, "node", filters.get("node"));
  setIf(out, "desiredState", desired);
  setIf(out, "id", filters.get("id"));
  setIf(out, "name", filters.get("name"));
  setIf(out, "label", labelFilters(filters.get("label")));
  if (upToDate !== undefined && upToDate.length > 0) out.upToDate = true;
  return out;
}
