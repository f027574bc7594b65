import assert from "node:assert/strict";

import type { Clock } from "../../common/clock.js";
import { AlreadyExistsError, ConflictError, NotFoundError } from "../../common/errors.js";
import { isForwardTransition, type Meta } from "../objects/index.js";
import { findCommitted, lookupReference, planMatches, planQuery, type QueryPlan } from "./query.js";
import type { Table, Tables } from "./table.js";
import type {
  NewObject,
  ObjectByKind,
  ObjectKind,
  QueryFor,
  ReadTx,
  StoreChange,
  StoreChangeOf,
  StoreObject,
  WriteTx,
} from "./types.js";

/** A committed-state read transaction. Valid only during the view callback. */
export class ReadTxImpl implements ReadTx {
  readonly #tables: Tables;
  readonly version: number;

  constructor(tables: Tables, version: number) {
    this.#tables = tables;
    this.version = version;
  }

  get<K extends ObjectKind>(kind: K, id: string): ObjectByKind[K] | undefined {
    return this.#tables[kind].objects.get(id);
  }

  find<K extends ObjectKind>(kind: K, query?: QueryFor<K>): ObjectByKind[K][] {
    return findCommitted(this.#tables[kind], planQuery(query));
  }

  lookup<K extends ObjectKind>(kind: K, reference: string): ObjectByKind[K] {
    const table = this.#tables[kind];
    return lookupReference(kind, reference, { get: (id) => table.objects.get(id), find: (plan) => findCommitted(table, plan) });
  }
}

interface Entry<T> {
  /** The object before this overlay's chain touched it (committed state, or a parent's). */
  before: T | undefined;
  after: T | undefined;
  /** First-touch order, so changes commit in the order they were made. */
  order: number;
}

type Entries = { [K in ObjectKind]: Map<string, Entry<ObjectByKind[K]>> };

/**
 * Uncommitted changes over the committed tables. A batch keeps one overlay per proposal;
 * each batch.update callback gets a child overlay, merged into its parent on success and
 * dropped on failure, so a failed callback leaves the batch's other changes alone.
 */
export class Overlay {
  readonly entries: Entries = { cluster: new Map(), node: new Map(), service: new Map(), task: new Map(), network: new Map() };
  readonly #parent: Overlay | undefined;
  readonly #sequence: { next: number };

  constructor(parent: Overlay | undefined) {
    this.#parent = parent;
    this.#sequence = parent === undefined ? { next: 0 } : parent.#sequence;
  }

  lookup<K extends ObjectKind>(kind: K, id: string): Entry<ObjectByKind[K]> | undefined {
    return this.entries[kind].get(id) ?? this.#parent?.lookup(kind, id);
  }

  /** Every entry of `kind` visible through the chain, children shadowing parents. */
  visible<K extends ObjectKind>(kind: K): Map<string, Entry<ObjectByKind[K]>> {
    const visible = this.#parent === undefined ? new Map<string, Entry<ObjectByKind[K]>>() : this.#parent.visible(kind);
    for (const [id, entry] of this.entries[kind]) visible.set(id, entry);
    return visible;
  }

  /** Records `after` as the object's new state; `before` (what the writer saw) counts only on first touch. */
  set<K extends ObjectKind>(kind: K, id: string, before: ObjectByKind[K] | undefined, after: ObjectByKind[K] | undefined): void {
    const own = this.entries[kind].get(id);
    if (own !== undefined) {
      own.after = after;
      return;
    }
    this.entries[kind].set(id, { before, after, order: this.#sequence.next++ });
  }

  get size(): number {
    return this.entries.cluster.size + this.entries.node.size + this.entries.service.size + this.entries.task.size + this.entries.network.size;
  }

  /** Moves this overlay's changes into its parent (which must exist). */
  mergeIntoParent(): void {
    const parent = this.#parent;
    assert.ok(parent !== undefined, "only a child overlay merges into a parent");
    this.#mergeKind(parent, "cluster");
    this.#mergeKind(parent, "node");
    this.#mergeKind(parent, "service");
    this.#mergeKind(parent, "task");
    this.#mergeKind(parent, "network");
  }

  #mergeKind<K extends ObjectKind>(parent: Overlay, kind: K): void {
    for (const [id, entry] of this.entries[kind]) {
      const existing = parent.entries[kind].get(id);
      if (existing === undefined) parent.entries[kind].set(id, entry);
      else existing.after = entry.after;
    }
  }

  /** The net change per object, in first-touch order. */
  changes(): StoreChange[] {
    const ordered: { order: number; change: StoreChange }[] = [
      ...this.#kindChanges("cluster"),
      ...this.#kindChanges("node"),
      ...this.#kindChanges("service"),
      ...this.#kindChanges("task"),
      ...this.#kindChanges("network"),
    ];
    return ordered.sort((left, right) => left.order - right.order).map((item) => item.change);
  }

  #kindChanges<K extends ObjectKind>(kind: K): { order: number; change: StoreChangeOf<K> }[] {
    const changes: { order: number; change: StoreChangeOf<K> }[] = [];
    for (const entry of this.entries[kind].values()) {
      const { before, after, order } = entry;
      if (before === undefined && after !== undefined) changes.push({ order, change: { action: "create", kind, object: after } });
      if (before !== undefined && after !== undefined) {
        // A delete and re-create in one transaction nets to an update of the stored version.
        const object = { ...after, meta: { ...after.meta, version: before.meta.version } };
        changes.push({ order, change: { action: "update", kind, object } });
      }
      if (before !== undefined && after === undefined) changes.push({ order, change: { action: "delete", kind, object: before } });
    }
    return changes;
  }
}

/** A write transaction over an overlay; see WriteTx for the contract. */
export class WriteTxImpl implements WriteTx {
  readonly #tables: Tables;
  readonly #overlay: Overlay;
  readonly #clock: Clock;
  readonly version: number;

  constructor(options: { tables: Tables; overlay: Overlay; clock: Clock; version: number }) {
    this.#tables = options.tables;
    this.#overlay = options.overlay;
    this.#clock = options.clock;
    this.version = options.version;
  }

  get<K extends ObjectKind>(kind: K, id: string): ObjectByKind[K] | undefined {
    const entry = this.#overlay.lookup(kind, id);
    if (entry !== undefined) return entry.after;
    return this.#tables[kind].objects.get(id);
  }

  find<K extends ObjectKind>(kind: K, query?: QueryFor<K>): ObjectByKind[K][] {
    return this.#findPlan(kind, planQuery(query));
  }

  #findPlan<K extends ObjectKind>(kind: K, plan: QueryPlan): ObjectByKind[K][] {
    const table: Table<ObjectByKind[K]> = this.#tables[kind];
    const touched = this.#overlay.visible(kind);
    const found = findCommitted(table, plan).filter((object) => !touched.has(object.id));
    for (const entry of touched.values()) {
      if (entry.after !== undefined && planMatches(table, plan, entry.after)) found.push(entry.after);
    }
    return found;
  }

  lookup<K extends ObjectKind>(kind: K, reference: string): ObjectByKind[K] {
    return lookupReference(kind, reference, { get: (id) => this.get(kind, id), find: (plan) => this.#findPlan(kind, plan) });
  }

  create<K extends ObjectKind>(kind: K, object: NewObject<K>): ObjectByKind[K] {
    if (this.get(kind, object.id) !== undefined) throw new AlreadyExistsError(`${kind} ${object.id} already exists`);
    const now = this.#clock.now();
    const meta: Meta = { version: 0, createdAt: now, updatedAt: now };
    // Omit<T, "meta"> plus meta is T, which TypeScript cannot see through a generic.
    const created = { ...object, meta } as ObjectByKind[K];
    this.#checkUniqueName(kind, created);
    this.#overlay.set(kind, created.id, undefined, created);
    return created;
  }

  update<K extends ObjectKind>(kind: K, object: ObjectByKind[K]): ObjectByKind[K] {
    const current = this.get(kind, object.id);
    if (current === undefined) throw new NotFoundError(`${kind} ${object.id} not found: it was deleted`);
    if (current.meta.version !== object.meta.version) {
      throw new ConflictError(
        `update out of sequence: ${kind} ${object.id} is at version ${current.meta.version} but the update was based on version ${object.meta.version}; read it again and retry`,
      );
    }
    assertForwardTask(current, object);
    const updated = { ...object, meta: { version: current.meta.version, createdAt: current.meta.createdAt, updatedAt: this.#clock.now() } };
    this.#checkUniqueName(kind, updated);
    this.#overlay.set(kind, object.id, current, updated);
    return updated;
  }

  delete(kind: ObjectKind, id: string): void {
    const current = this.get(kind, id);
    if (current === undefined) throw new NotFoundError(`${kind} ${id} not found`);
    this.#overlay.set(kind, id, current, undefined);
  }

  #checkUniqueName(kind: ObjectKind, object: StoreObject): void {
    if (kind !== "service" && kind !== "cluster" && kind !== "network") return;
    const name = "spec" in object && "name" in object.spec ? object.spec.name : undefined;
    if (name === undefined) return;
    const holder = this.#findPlan(kind, { type: "index", name: "name", key: name }).find((other) => other.id !== object.id);
    if (holder !== undefined) throw new AlreadyExistsError(`${kind} name "${name}" is already used by ${kind} ${holder.id}; choose another name`);
  }
}

/** Task states (observed and desired) only move forward: a bug in the caller otherwise. */
export function assertForwardTask(current: StoreObject, next: StoreObject): void {
  if (!("desiredState" in current) || !("desiredState" in next)) return;
  assert.ok(
    isForwardTransition(current.status.state, next.status.state),
    `task ${current.id}: state may not move from ${current.status.state} back to ${next.status.state}`,
  );
  assert.ok(
    isForwardTransition(current.desiredState, next.desiredState),
    `task ${current.id}: desired state may not move from ${current.desiredState} back to ${next.desiredState}`,
  );
}
