import { InvalidArgumentError, NotFoundError } from "../../common/errors.js";
import type { IndexName, Table } from "./table.js";
import { slotKey } from "./table.js";
import type { CommonQuery, ObjectKind, StoreObject, TaskQuery } from "./types.js";

/** How a query reads a table: every object, an id prefix scan, or one index key. */
export type QueryPlan = { type: "all" } | { type: "prefix"; prefix: string } | { type: "index"; name: IndexName; key: string };

export function planQuery(query: CommonQuery | TaskQuery | undefined): QueryPlan {
  if (query === undefined) return { type: "all" };
  switch (query.by) {
    case "all":
      return { type: "all" };
    case "idPrefix":
      return { type: "prefix", prefix: query.prefix };
    case "name":
      return { type: "index", name: "name", key: query.name };
    case "serviceId":
      return { type: "index", name: "serviceId", key: query.serviceId };
    case "nodeId":
      return { type: "index", name: "nodeId", key: query.nodeId };
    case "desiredState":
      return { type: "index", name: "desiredState", key: query.state };
    case "slot":
      return { type: "index", name: "slot", key: slotKey(query.serviceId, query.slot) };
  }
}

export function planMatches<T extends StoreObject>(table: Table<T>, plan: QueryPlan, object: T): boolean {
  switch (plan.type) {
    case "all":
      return true;
    case "prefix":
      return object.id.startsWith(plan.prefix);
    case "index":
      return table.keyOf(plan.name, object) === plan.key;
  }
}

/** The committed objects a plan selects. */
export function findCommitted<T extends StoreObject>(table: Table<T>, plan: QueryPlan): T[] {
  if (plan.type === "index") {
    const found: T[] = [];
    for (const id of table.ids(plan.name, plan.key)) {
      const object = table.objects.get(id);
      if (object !== undefined) found.push(object);
    }
    return found;
  }
  const found: T[] = [];
  for (const object of table.objects.values()) if (planMatches(table, plan, object)) found.push(object);
  return found;
}

/** Most ids a reference may resolve to before it is reported ambiguous (the message lists them). */
const ambiguousIdsShownMax = 5;

/** Resolves a user's reference (id, then name, then unique id prefix), as ReadTx.lookup documents. */
export function lookupReference<T extends StoreObject>(
  kind: ObjectKind,
  reference: string,
  reads: { get(id: string): T | undefined; find(plan: QueryPlan): T[] },
): T {
  if (reference === "") throw new InvalidArgumentError(`${kind} reference must not be empty`);
  const exact = reads.get(reference);
  if (exact !== undefined) return exact;
  const ambiguous = (matches: T[], how: string): InvalidArgumentError =>
    new InvalidArgumentError(
      `${kind} ${how} "${reference}" is ambiguous: it matches ${matches.length} ${kind}s (${matches
        .slice(0, ambiguousIdsShownMax)
        .map((object) => object.id)
        .join(", ")}); use a full id`,
    );
  if (kind !== "task") {
    const named = reads.find({ type: "index", name: "name", key: reference });
    if (named.length > 1) throw ambiguous(named, "name");
    const [byName] = named;
    if (byName !== undefined) return byName;
  }
  const prefixed = reads.find({ type: "prefix", prefix: reference });
  if (prefixed.length > 1) throw ambiguous(prefixed, "id prefix");
  const [byPrefix] = prefixed;
  if (byPrefix !== undefined) return byPrefix;
  throw new NotFoundError(`no ${kind} with id or name "${reference}"`);
}
