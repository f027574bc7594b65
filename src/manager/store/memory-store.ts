import assert from "node:assert/strict";
import { addAbortListener } from "node:events";
import { setImmediate as setImmediatePromise } from "node:timers/promises";

import { systemClock, type Clock } from "../../common/clock.js";
import {
  CancelledError,
  ConflictError,
  FailedPreconditionError,
  InvalidArgumentError,
  UnavailableError,
  throwIfAborted,
} from "../../common/errors.js";
import type { Logger } from "../../common/logger.js";
import { readStoreSnapshot, storeSnapshotPieces, transactionChangesMax } from "./codec.js";
import { createTables, type Table, type Tables } from "./table.js";
import { Overlay, ReadTxImpl, WriteTxImpl } from "./tx.js";
import type {
  ChangeAction,
  ObjectByKind,
  ObjectKind,
  Proposer,
  ReadTx,
  StoreChange,
  StoreEvent,
  StoreObjectEventOf,
  WriteTx,
} from "./types.js";
import { batchProblem } from "./validate.js";
import { Watcher, watchQueueEventsMax } from "./watch.js";

/** Indexes of refused batches remembered so the proposing update() can report its conflict. */
const rejectedIndexesMax = 1_024;
/**
 * Objects whose JSON a snapshot writes per turn of the event loop: a task takes about 5 us,
 * so a turn holds the loop for about a millisecond.
 */
export const snapshotObjectsPerTurn = 256;
/**
 * Objects a restore parses, checks and indexes per turn of the event loop: a task takes
 * about 15 us, so a turn holds the loop for about a millisecond.
 */
export const restoreObjectsPerTurn = 64;

export interface MemoryStoreOptions {
  /** null: apply writes locally with a local version counter (tests, a single node without raft). */
  proposer: Proposer | null;
  logger: Logger;
  clock?: Clock;
  watchQueueEventsMax?: number;
}

/** Groups many write callbacks into few proposals; see MemoryStore.batch. */
export interface Batch {
  /**
   * Runs `callback` in a write transaction on top of the batch's earlier changes. When the
   * callback throws, its own changes are dropped and the error is rethrown; the batch goes on.
   * Resolves once any proposal this triggers is committed.
   */
  update(callback: (tx: WriteTx) => void): Promise<void>;
}

export interface WatchOptions {
  /** Which events to deliver ("commit" and "restored" included); all of them by default. */
  filter?: (event: StoreEvent) => boolean;
  /** Ends the iteration (cleanly) when fired. */
  signal?: AbortSignal;
}

interface AppliedWaiter {
  index: number;
  resolve: () => void;
  reject: (error: Error) => void;
}

function deepFreeze(value: object): void {
  if (Object.isFrozen(value)) return;
  Object.freeze(value);
  for (const key of Object.keys(value)) {
    const item: unknown = Reflect.get(value, key);
    if (typeof item === "object" && item !== null) deepFreeze(item);
  }
}

/**
 * The manager's replicated state, after swarmkit's manager/state/store/memory.go. Reads see
 * committed state; writes run one at a time, go through the Proposer, and change the tables
 * only in applyCommitted (on the leader as on followers), so every manager applies the same
 * batches in the same order. Stored objects are frozen.
 */
export class MemoryStore {
  #tables: Tables = createTables();
  #version = 0;
  readonly #proposer: Proposer | null;
  readonly #logger: Logger;
  readonly #clock: Clock;
  readonly #watchQueueEventsMax: number;
  readonly #watchers = new Set<Watcher>();
  readonly #waiters = new Set<AppliedWaiter>();
  readonly #rejected = new Set<number>();
  #writeTail: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(options: MemoryStoreOptions) {
    this.#proposer = options.proposer;
    this.#logger = options.logger.child({ component: "store" });
    this.#clock = options.clock ?? systemClock;
    this.#watchQueueEventsMax = options.watchQueueEventsMax ?? watchQueueEventsMax;
    assert.ok(this.#watchQueueEventsMax > 0, "watchQueueEventsMax must be positive");
  }

  /** The raft index (or local counter) of the last applied batch. */
  get version(): number {
    return this.#version;
  }

  /** Runs `callback` on a consistent read-only view; the view is valid only during the call. */
  view<T>(callback: (tx: ReadTx) => T): T {
    return callback(new ReadTxImpl(this.#tables, this.#version));
  }

  /**
   * Runs `callback` (synchronous) in a write transaction and commits its changes in one
   * proposal; resolves with the callback's result once they are applied. Nothing changes
   * when the callback throws (its error is rethrown), the proposer rejects (its error), a
   * concurrent write won the race (ConflictError), or more than transactionChangesMax
   * objects change (InvalidArgumentError). UnavailableError after close().
   */
  async update<T>(callback: (tx: WriteTx) => T, options: { signal?: AbortSignal } = {}): Promise<T> {
    const { signal } = options;
    throwIfAborted(signal);
    return this.#exclusive(async () => {
      throwIfAborted(signal);
      const overlay = new Overlay(undefined);
      const result = callback(new WriteTxImpl({ tables: this.#tables, overlay, clock: this.#clock, version: this.#version }));
      assert.ok(!(result instanceof Promise), "store update callbacks must be synchronous");
      const changes = overlay.changes();
      if (changes.length > transactionChangesMax) {
        throw new InvalidArgumentError(`a transaction changed ${changes.length} objects, more than ${transactionChangesMax}; use batch()`);
      }
      await this.#commit(changes, signal);
      return result;
    });
  }

  /**
   * Runs many small write callbacks and commits them in proposals of about
   * transactionChangesMax changes (swarmkit's Batch): for writes too large for one
   * transaction, like assigning every pending task. Not atomic as a whole: when a proposal
   * fails, the batch rejects with its error and the proposals before it stay committed;
   * when `callback` throws, the changes not yet proposed are dropped and its error rethrown.
   */
  async batch(callback: (batch: Batch) => Promise<void> | void, options: { signal?: AbortSignal } = {}): Promise<void> {
    const { signal } = options;
    throwIfAborted(signal);
    await this.#exclusive(async () => {
      let root = new Overlay(undefined);
      const flush = async (): Promise<void> => {
        const changes = root.changes();
        root = new Overlay(undefined);
        await this.#commit(changes, signal);
      };
      await callback({
        update: async (write) => {
          throwIfAborted(signal);
          const child = new Overlay(root);
          const result: unknown = write(new WriteTxImpl({ tables: this.#tables, overlay: child, clock: this.#clock, version: this.#version }));
          assert.ok(!(result instanceof Promise), "store update callbacks must be synchronous");
          if (child.size > transactionChangesMax) {
            throw new InvalidArgumentError(`a batch update changed ${child.size} objects, more than ${transactionChangesMax}`);
          }
          child.mergeIntoParent();
          if (root.size >= transactionChangesMax) await flush();
        },
      });
      await flush();
    });
  }

  /**
   * Streams events from now on, in commit order. A watcher that falls more than
   * watchQueueEventsMax events behind ends with ResourceExhaustedError; close() and the
   * signal end it cleanly, as does leaving a for-await loop.
   */
  watch(options: WatchOptions = {}): AsyncIterableIterator<StoreEvent, undefined> {
    const watcher = new Watcher({
      filter: options.filter ?? (() => true),
      queueEventsMax: this.#watchQueueEventsMax,
      signal: options.signal,
      onClose: (closed) => this.#watchers.delete(closed),
    });
    if (this.#closed) watcher.close(new UnavailableError("the store is closed"));
    else if (!watcher.closed) this.#watchers.add(watcher);
    return watcher;
  }

  /** Reads a consistent view and starts watching right after it, with no event missed in between. */
  viewAndWatch<T>(callback: (tx: ReadTx) => T, options: WatchOptions = {}): { result: T; events: AsyncIterableIterator<StoreEvent, undefined> } {
    const events = this.watch(options);
    return { result: this.view(callback), events };
  }

  /**
   * Applies a committed batch at raft index `index` (> version). The raft driver calls this
   * for every committed store entry, in log order, on every manager. A batch that does not
   * fit the current state (it lost a race) is refused whole, identically on every manager,
   * and logged; its proposer's update() then fails with ConflictError.
   */
  applyCommitted(changes: readonly StoreChange[], index: number): void {
    assert.ok(Number.isSafeInteger(index), "the raft index must be an integer");
    assert.ok(index > this.#version, `batch at index ${index} is not after the applied version ${this.#version}`);
    const problem = batchProblem(this.#tables, changes);
    if (problem !== undefined) {
      this.#logger.warn({ index, problem }, "refused a committed store batch");
      this.#rejected.add(index);
      if (this.#rejected.size > rejectedIndexesMax) {
        const [oldest] = this.#rejected;
        if (oldest !== undefined) this.#rejected.delete(oldest);
      }
      this.#version = index;
      this.#wakeWaiters();
      return;
    }
    const events = changes.map((change) => this.#applyChange(change, index));
    this.#version = index;
    for (const event of events) this.#publish(event);
    this.#publish({ type: "commit", version: index });
    this.#wakeWaiters();
  }

  /**
   * The whole state as bytes, in parts that joined in order are the bytes, for a raft
   * snapshot at the current version. The objects are taken at the call (stored objects
   * are frozen: a change replaces them, never edits them); their JSON is then written
   * snapshotObjectsPerTurn at a time, one turn of the event loop each. Encoded in one go,
   * 10,000 tasks held the loop for about 60 ms (see bench/snapshot), and raft, the
   * dispatcher's heartbeats and the API with it. The parts are not joined here: raft's
   * envelope copies them once.
   */
  async snapshot(): Promise<Buffer[]> {
    const pieces = storeSnapshotPieces({
      version: this.#version,
      clusters: [...this.#tables.cluster.objects.values()],
      nodes: [...this.#tables.node.objects.values()],
      services: [...this.#tables.service.objects.values()],
      tasks: [...this.#tables.task.objects.values()],
      networks: [...this.#tables.network.objects.values()],
    });
    const slices: Buffer[] = [];
    let slice: string[] = [];
    for (const piece of pieces) {
      slice.push(piece);
      if (slice.length < snapshotObjectsPerTurn) continue;
      slices.push(Buffer.from(slice.join(""), "utf8"));
      slice = [];
      await setImmediatePromise();
    }
    slices.push(Buffer.from(slice.join(""), "utf8"));
    return slices;
  }

  /**
   * Replaces the whole state with a snapshot's (a follower catching up, or a restart).
   * InvalidArgumentError when the bytes do not parse or hold duplicate ids or versions
   * beyond the snapshot's; FailedPreconditionError when the snapshot is older than the
   * store. Watchers get a "restored" event and must re-read. The objects are parsed and
   * indexed restoreObjectsPerTurn at a time, one turn of the event loop each, into new
   * tables that replace the old ones at the end. In one go, 10,000 tasks held the loop for
   * 200-350 ms; sliced, no turn takes more than a few (bench/snapshot). Raft applies
   * nothing while a restore runs.
   */
  async restore(data: Uint8Array): Promise<void> {
    const snapshot = readStoreSnapshot(data);
    this.#checkRestorable(snapshot.version);
    const tables = createTables();
    const load = <K extends ObjectKind>({ kind, object }: { kind: K; object: ObjectByKind[K] }): void => {
      if (tables[kind].objects.has(object.id)) throw new InvalidArgumentError(`snapshot holds ${kind} ${object.id} twice`);
      if (object.meta.version > snapshot.version) {
        throw new InvalidArgumentError(`snapshot ${kind} ${object.id} has version ${object.meta.version}, beyond the snapshot's ${snapshot.version}`);
      }
      deepFreeze(object);
      tables[kind].put(object);
    };
    let loaded = 0;
    for (const item of snapshot.objects()) {
      load(item);
      loaded += 1;
      if (loaded % restoreObjectsPerTurn === 0) await setImmediatePromise();
    }
    for (const kind of ["service", "cluster", "network"] as const) {
      for (const object of tables[kind].objects.values()) {
        if (tables[kind].ids("name", object.spec.name).size > 1) throw new InvalidArgumentError(`snapshot holds two ${kind}s named "${object.spec.name}"`);
      }
    }
    // Checked again: a write applied while the objects loaded would be lost by the swap.
    this.#checkRestorable(snapshot.version);
    this.#tables = tables;
    this.#version = snapshot.version;
    this.#publish({ type: "restored", version: snapshot.version });
    this.#wakeWaiters();
  }

  #checkRestorable(version: number): void {
    if (version < this.#version) {
      throw new FailedPreconditionError(`snapshot at version ${version} is older than the store (version ${this.#version})`);
    }
  }

  /** Ends every watch cleanly and fails writes waiting to apply; later writes get UnavailableError. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const watcher of [...this.#watchers]) watcher.close(undefined);
    for (const waiter of [...this.#waiters]) waiter.reject(new UnavailableError("the store closed before the write was applied"));
    this.#waiters.clear();
  }

  async #exclusive<T>(work: () => Promise<T>): Promise<T> {
    if (this.#closed) throw new UnavailableError("the store is closed");
    const previous = this.#writeTail;
    let release: () => void = () => undefined;
    this.#writeTail = new Promise((resolve) => {
      release = resolve;
    });
    try {
      await previous;
      if (this.#closed) throw new UnavailableError("the store is closed");
      return await work();
    } finally {
      release();
    }
  }

  async #commit(changes: StoreChange[], signal: AbortSignal | undefined): Promise<void> {
    if (changes.length === 0) return;
    if (this.#proposer === null) {
      const index = this.#version + 1;
      this.applyCommitted(changes, index);
      assert.ok(!this.#rejected.has(index), "a local transaction validated under the write lock cannot be refused");
      return;
    }
    const index = await this.#proposer.propose(changes, signal === undefined ? {} : { signal });
    await this.#waitApplied(index, signal);
    if (this.#rejected.has(index)) {
      throw new ConflictError("update out of sequence: another change to the same objects committed first; read them again and retry");
    }
  }

  #applyChange(change: StoreChange, index: number): StoreEvent {
    switch (change.kind) {
      case "cluster":
        return this.#applyKind(change.kind, change.action, change.object, index);
      case "node":
        return this.#applyKind(change.kind, change.action, change.object, index);
      case "service":
        return this.#applyKind(change.kind, change.action, change.object, index);
      case "task":
        return this.#applyKind(change.kind, change.action, change.object, index);
      case "network":
        return this.#applyKind(change.kind, change.action, change.object, index);
    }
  }

  #applyKind<K extends ObjectKind>(kind: K, action: ChangeAction, object: ObjectByKind[K], index: number): StoreObjectEventOf<K> {
    const table: Table<ObjectByKind[K]> = this.#tables[kind];
    const previous = table.objects.get(object.id);
    if (action === "delete") {
      assert.ok(previous !== undefined, "validated deletes find their object");
      table.delete(object.id);
      return { type: "deleted", kind, object: previous, version: index };
    }
    assert.ok(previous === undefined || previous.meta.version < index, "versions only grow");
    const stored = { ...object, meta: { ...object.meta, version: index } };
    deepFreeze(stored);
    table.put(stored);
    if (previous === undefined) return { type: "created", kind, object: stored, version: index };
    return { type: "updated", kind, object: stored, previous, version: index };
  }

  #publish(event: StoreEvent): void {
    for (const watcher of this.#watchers) watcher.push(event);
  }

  #waitApplied(index: number, signal: AbortSignal | undefined): Promise<void> {
    if (this.#version >= index) return Promise.resolve();
    if (this.#closed) return Promise.reject(new UnavailableError("the store closed before the write was applied"));
    return new Promise((resolve, reject) => {
      const listener = signal === undefined ? undefined : addAbortListener(signal, () => {
        this.#waiters.delete(waiter);
        reject(new CancelledError(`cancelled while waiting for index ${index} to apply; the write may still commit`, { cause: signal.reason }));
      });
      const waiter: AppliedWaiter = {
        index,
        resolve: () => {
          listener?.[Symbol.dispose]();
          resolve();
        },
        reject: (error) => {
          listener?.[Symbol.dispose]();
          reject(error);
        },
      };
      this.#waiters.add(waiter);
    });
  }

  #wakeWaiters(): void {
    for (const waiter of [...this.#waiters]) {
      if (waiter.index > this.#version) continue;
      this.#waiters.delete(waiter);
      waiter.resolve();
    }
  }
}
