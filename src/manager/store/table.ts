import type { ObjectByKind, ObjectKind, StoreObject } from "./types.js";

/** A secondary index: key -> ids. Objects without a key (undefined) are not indexed. */
class MultiIndex<T extends StoreObject> {
  readonly #keyOf: (object: T) => string | undefined;
  readonly #ids = new Map<string, Set<string>>();

  constructor(keyOf: (object: T) => string | undefined) {
    this.#keyOf = keyOf;
  }

  keyOf(object: T): string | undefined {
    return this.#keyOf(object);
  }

  add(object: T): void {
    const key = this.#keyOf(object);
    if (key === undefined) return;
    let ids = this.#ids.get(key);
    if (ids === undefined) {
      ids = new Set();
      this.#ids.set(key, ids);
    }
    ids.add(object.id);
  }

  remove(object: T): void {
    const key = this.#keyOf(object);
    if (key === undefined) return;
    const ids = this.#ids.get(key);
    if (ids === undefined) return;
    ids.delete(object.id);
    if (ids.size === 0) this.#ids.delete(key);
  }

  ids(key: string): ReadonlySet<string> {
    return this.#ids.get(key) ?? emptyIds;
  }
}

const emptyIds: ReadonlySet<string> = new Set();

export type IndexName = "name" | "serviceId" | "nodeId" | "desiredState" | "slot";

export function slotKey(serviceId: string, slot: number): string {
  return `${serviceId}/${slot}`;
}

/** The objects of one kind with their secondary indexes. */
export class Table<T extends StoreObject> {
  readonly objects = new Map<string, T>();
  readonly #indexes: ReadonlyMap<IndexName, MultiIndex<T>>;

  constructor(indexes: ReadonlyMap<IndexName, (object: T) => string | undefined>) {
    this.#indexes = new Map([...indexes].map(([name, keyOf]) => [name, new MultiIndex(keyOf)]));
  }

  put(object: T): void {
    const previous = this.objects.get(object.id);
    if (previous !== undefined) for (const index of this.#indexes.values()) index.remove(previous);
    this.objects.set(object.id, object);
    for (const index of this.#indexes.values()) index.add(object);
  }

  delete(id: string): void {
    const previous = this.objects.get(id);
    if (previous === undefined) return;
    for (const index of this.#indexes.values()) index.remove(previous);
    this.objects.delete(id);
  }

  /** The key `object` has in index `name`, or undefined when the table has no such index. */
  keyOf(name: IndexName, object: T): string | undefined {
    return this.#indexes.get(name)?.keyOf(object);
  }

  ids(name: IndexName, key: string): ReadonlySet<string> {
    const index = this.#indexes.get(name);
    return index === undefined ? emptyIds : index.ids(key);
  }
}

export type Tables = { [K in ObjectKind]: Table<ObjectByKind[K]> };

function nodeName(node: ObjectByKind["node"]): string | undefined {
  if (node.spec.name !== "") return node.spec.name;
  return node.description?.hostname;
}

export function createTables(): Tables {
  return {
    cluster: new Table<ObjectByKind["cluster"]>(new Map([["name", (cluster) => cluster.spec.name]])),
    node: new Table<ObjectByKind["node"]>(new Map([["name", nodeName]])),
    service: new Table<ObjectByKind["service"]>(new Map([["name", (service) => service.spec.name]])),
    network: new Table<ObjectByKind["network"]>(new Map([["name", (network) => network.spec.name]])),
    task: new Table<ObjectByKind["task"]>(
      new Map<IndexName, (task: ObjectByKind["task"]) => string | undefined>([
        ["serviceId", (task) => task.serviceId],
        ["nodeId", (task) => (task.nodeId === "" ? undefined : task.nodeId)],
        ["desiredState", (task) => task.desiredState],
        ["slot", (task) => slotKey(task.serviceId, task.slot)],
      ]),
    ),
  };
}
