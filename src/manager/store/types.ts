import type { Cluster, Network, Node, Service, Task, TaskState } from "../objects/index.js";

export const objectKinds = ["cluster", "node", "service", "task", "network"] as const;
export type ObjectKind = (typeof objectKinds)[number];

export interface ObjectByKind {
  cluster: Cluster;
  node: Node;
  service: Service;
  task: Task;
  network: Network;
}

export type StoreObject = ObjectByKind[ObjectKind];

export const changeActions = ["create", "update", "delete"] as const;
export type ChangeAction = (typeof changeActions)[number];

/**
 * One object's change in a committed transaction. `object` is the object after the change
 * (the object as it was, for delete). `object.meta.version` is the version the change
 * expects to find stored (0 for create): applying checks it, so a write that lost a race
 * is refused the same way on every manager. The stored version becomes the raft index.
 */
export type StoreChangeOf<K extends ObjectKind> = { action: ChangeAction; kind: K; object: ObjectByKind[K] };
export type StoreChange = { [K in ObjectKind]: StoreChangeOf<K> }[ObjectKind];

export type StoreObjectEventOf<K extends ObjectKind> =
  | { type: "created"; kind: K; object: ObjectByKind[K]; version: number }
  | { type: "updated"; kind: K; object: ObjectByKind[K]; previous: ObjectByKind[K]; version: number }
  | { type: "deleted"; kind: K; object: ObjectByKind[K]; version: number };
export type StoreObjectEvent = { [K in ObjectKind]: StoreObjectEventOf<K> }[ObjectKind];

/**
 * What watchers see: one event per changed object, then one "commit" per applied
 * transaction, in commit order. "restored" means the whole state was replaced from a
 * snapshot: watchers must re-read everything.
 */
export type StoreEvent = StoreObjectEvent | { type: "commit"; version: number } | { type: "restored"; version: number };

/** Index lookups every kind supports. */
export type CommonQuery = { by: "all" } | { by: "idPrefix"; prefix: string } | { by: "name"; name: string };
export type TaskQuery =
  | { by: "all" }
  | { by: "idPrefix"; prefix: string }
  | { by: "serviceId"; serviceId: string }
  | { by: "nodeId"; nodeId: string }
  | { by: "desiredState"; state: TaskState }
  | { by: "slot"; serviceId: string; slot: number };
export type QueryFor<K extends ObjectKind> = K extends "task" ? TaskQuery : CommonQuery;

/** A consistent, read-only view of the store. Objects are frozen: copy before changing. */
export interface ReadTx {
  /** The version (raft index) of the last applied change. */
  readonly version: number;
  get<K extends ObjectKind>(kind: K, id: string): ObjectByKind[K] | undefined;
  /** Objects matching an index query (all of them without one), in no particular order. */
  find<K extends ObjectKind>(kind: K, query?: QueryFor<K>): ObjectByKind[K][];
  /**
   * Resolves what a user typed: a full id, then a name (services, nodes, clusters), then a
   * unique id prefix. Throws NotFoundError when nothing matches and InvalidArgumentError
   * when a prefix or name matches more than one object.
   */
  lookup<K extends ObjectKind>(kind: K, reference: string): ObjectByKind[K];
}

export type NewObject<K extends ObjectKind> = Omit<ObjectByKind[K], "meta">;

/**
 * A write transaction: changes are visible to reads in the same transaction and are
 * committed together when the callback returns. Errors thrown by these methods (or by the
 * callback) abandon the whole transaction. The store takes ownership of the objects passed
 * in: once committed they (and everything they reference) are frozen.
 */
export interface WriteTx extends ReadTx {
  /** Throws AlreadyExistsError when the id (or a service's name) is taken. */
  create<K extends ObjectKind>(kind: K, object: NewObject<K>): ObjectByKind[K];
  /**
   * Replaces an object. `object.meta.version` must be the version it was read at, else
   * ConflictError ("update out of sequence"); NotFoundError when it is gone. Asserts that
   * a task's observed and desired states only move forward.
   */
  update<K extends ObjectKind>(kind: K, object: ObjectByKind[K]): ObjectByKind[K];
  /** Throws NotFoundError when there is no such object. */
  delete(kind: ObjectKind, id: string): void;
}

/**
 * The store's only link to raft (swarmkit state/proposer.go). The driver must call
 * `MemoryStore.applyCommitted` for every committed store entry, in log order, on every
 * manager, including entries this manager proposed; it may do so before or after the
 * matching `propose` resolves. A leader must have applied every entry of earlier terms
 * before it proposes (it waits for its own term's first entry to apply).
 */
export interface Proposer {
  /**
   * Replicates `changes` and resolves with the raft index of the entry once it is
   * committed. Rejects (UnavailableError when not the leader, CancelledError on abort)
   * when the entry may not commit; the store then stays as it was.
   */
  propose(changes: readonly StoreChange[], options: { signal?: AbortSignal }): Promise<number>;
}
