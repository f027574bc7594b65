import type { Labels, Node, Service, Task } from "../objects/index.js";
import type { ReadTx } from "../store/index.js";
import type { LabelFilter, NodeFilters, ServiceFilters, TaskFilters } from "./types.js";

/** True when the filter is absent or empty, or when any of its values matches. */
function anyOf<T>(values: readonly T[] | undefined, matches: (value: T) => boolean): boolean {
  return values === undefined || values.length === 0 || values.some(matches);
}

/** Every label filter must match (docker ANDs label filters, unlike the others). */
export function labelsMatch(labels: Labels, filters: readonly LabelFilter[] | undefined): boolean {
  if (filters === undefined) return true;
  return filters.every((filter) => {
    const value = labels[filter.key];
    if (value === undefined) return false;
    return filter.value === undefined || filter.value === value;
  });
}

export function serviceMatches(service: Service, filters: ServiceFilters): boolean {
  return (
    anyOf(filters.id, (prefix) => service.id.startsWith(prefix)) &&
    anyOf(filters.name, (prefix) => service.spec.name.startsWith(prefix)) &&
    anyOf(filters.mode, (mode) => service.spec.mode.type === mode) &&
    labelsMatch(service.spec.labels, filters.label)
  );
}

/** The name a node is known by: its spec name, else its hostname. */
export function nodeName(node: Node): string {
  return node.spec.name !== "" ? node.spec.name : (node.description?.hostname ?? "");
}

export function nodeMatches(node: Node, filters: NodeFilters): boolean {
  return (
    anyOf(filters.id, (prefix) => node.id.startsWith(prefix)) &&
    anyOf(filters.name, (prefix) => nodeName(node).startsWith(prefix)) &&
    anyOf(filters.role, (role) => node.spec.role === role) &&
    anyOf(filters.membership, (membership) => membership === "accepted") &&
    labelsMatch(node.description?.engine.labels ?? {}, filters.label) &&
    labelsMatch(node.spec.labels, filters.nodeLabel)
  );
}

/** Docker's task name: "service.slot.taskId" (replicated) or "service.nodeId.taskId" (global). */
export function taskName(task: Task, serviceName: string): string {
  return `${serviceName}.${task.slot === 0 ? task.nodeId : String(task.slot)}.${task.id}`;
}

function nameMatches(fullName: string, wanted: string): boolean {
  return fullName === wanted || fullName.startsWith(`${wanted}.`);
}

/**
 * Resolves references of a task filter (service or node names, ids, prefixes) to ids; a
 * reference that matches nothing resolves to no id, so it matches no task.
 */
export function resolveReferences(tx: ReadTx, kind: "service" | "node", references: readonly string[] | undefined): Set<string> | undefined {
  if (references === undefined || references.length === 0) return undefined;
  const ids = new Set<string>();
  for (const reference of references) {
    const exact = tx.get(kind, reference);
    const named = tx.find(kind, { by: "name", name: reference });
    if (exact !== undefined) ids.add(exact.id);
    for (const object of named) ids.add(object.id);
    if (exact === undefined && named.length === 0) {
      const prefixed = tx.find(kind, { by: "idPrefix", prefix: reference });
      if (prefixed.length === 1 && prefixed[0] !== undefined) ids.add(prefixed[0].id);
    }
  }
  return ids;
}

export interface ResolvedTaskFilters {
  filters: TaskFilters;
  serviceIds: Set<string> | undefined;
  nodeIds: Set<string> | undefined;
}

export function taskMatches(task: Task, service: Service | undefined, resolved: ResolvedTaskFilters): boolean {
  const { filters, serviceIds, nodeIds } = resolved;
  if (serviceIds !== undefined && !serviceIds.has(task.serviceId)) return false;
  if (nodeIds !== undefined && !nodeIds.has(task.nodeId)) return false;
  if (!anyOf(filters.desiredState, (state) => task.desiredState === state)) return false;
  if (!anyOf(filters.id, (prefix) => task.id.startsWith(prefix))) return false;
  if (filters.name !== undefined && filters.name.length > 0) {
    if (service === undefined) return false;
    const fullName = taskName(task, service.spec.name);
    if (!filters.name.some((wanted) => nameMatches(fullName, wanted))) return false;
  }
  if (filters.label !== undefined && !labelsMatch(service?.spec.labels ?? {}, filters.label)) return false;
  if (filters.upToDate === true && (service === undefined || !isTaskUpToDate(task, service))) return false;
  return true;
}

/**
 * A task is up to date when it runs the service's current task template and endpoint, as
 * swarmkit's orchestrator.IsTaskDirty decides: a replica count change leaves tasks current.
 */
export function isTaskUpToDate(task: Task, service: Service): boolean {
  return deepEqual(task.spec, service.spec.taskTemplate) && deepEqual(task.endpoint.ports, service.spec.endpointSpec.ports);
}

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const aKeys = Object.keys(a).filter((key) => Reflect.get(a, key) !== undefined);
  const bKeys = Object.keys(b).filter((key) => Reflect.get(b, key) !== undefined);
  if (aKeys.length !== bKeys.length) return false;
  return aKeys.every((key) => deepEqual(Reflect.get(a, key), Reflect.get(b, key)));
}
