import { isForwardTransition } from "../objects/index.js";
import type { Tables } from "./table.js";
import type { StoreChange } from "./types.js";

/**
 * Why a committed batch cannot apply to the current state, or undefined when it can. Every
 * manager runs this on the same state at the same index, so a batch is refused the same way
 * everywhere (a write that lost a race with one committed before it).
 */
export function batchProblem(tables: Tables, changes: readonly StoreChange[]): string | undefined {
  const seen = new Set<string>();
  for (const change of changes) {
    const key = `${change.kind}/${change.object.id}`;
    if (seen.has(key)) return `${key} changes twice in one batch`;
    seen.add(key);
    const problem = changeProblem(tables, change);
    if (problem !== undefined) return problem;
  }
  return uniqueNameProblem(tables, changes);
}

function changeProblem(tables: Tables, change: StoreChange): string | undefined {
  const { kind, object } = change;
  const stored = tables[kind].objects.get(object.id);
  if (change.action === "create") return stored === undefined ? undefined : `${kind} ${object.id} already exists`;
  if (stored === undefined) return `${kind} ${object.id} does not exist`;
  if (stored.meta.version !== object.meta.version) {
    return `${kind} ${object.id} is at version ${stored.meta.version}, the change expects ${object.meta.version}`;
  }
  if (change.action === "update" && change.kind === "task") {
    const task = tables.task.objects.get(object.id);
    if (task !== undefined && !isForwardTransition(task.status.state, change.object.status.state)) {
      return `task ${object.id} would move back from ${task.status.state} to ${change.object.status.state}`;
    }
    if (task !== undefined && !isForwardTransition(task.desiredState, change.object.desiredState)) {
      return `task ${object.id} desired state would move back from ${task.desiredState} to ${change.object.desiredState}`;
    }
  }
  return undefined;
}

/** Service and cluster names stay unique after the whole batch applies. */
function uniqueNameProblem(tables: Tables, changes: readonly StoreChange[]): string | undefined {
  for (const kind of ["service", "cluster", "network"] as const) {
    const touched = new Map<string, string | undefined>();
    for (const change of changes) {
      if (change.kind !== kind) continue;
      touched.set(change.object.id, change.action === "delete" ? undefined : change.object.spec.name);
    }
    if (touched.size === 0) continue;
    const owners = new Map<string, string>();
    for (const [id, name] of touched) {
      if (name === undefined) continue;
      const other = owners.get(name);
      if (other !== undefined) return `${kind} name "${name}" is claimed by both ${other} and ${id}`;
      owners.set(name, id);
      for (const holder of tables[kind].ids("name", name)) {
        if (holder !== id && !touched.has(holder)) return `${kind} name "${name}" is already used by ${holder}`;
      }
    }
  }
  return undefined;
}
