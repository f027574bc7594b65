// One simulated manager: a RawNode, its simulated driver (persist, fsync, send, apply,
// advance: the order the Ready contract requires), a small key-value state machine, and
// the client requests waiting on it.
import { Buffer } from "node:buffer";

import { decodeConfChange } from "../../src/raft/core/conf-change.js";
import { ProposalDroppedError, type RaftLogger } from "../../src/raft/core/raft.js";
import { RawNode } from "../../src/raft/core/raw-node.js";
import type { ConfState, Entry, Message, NodeId, Ready, Snapshot, StateRole } from "../../src/raft/core/types.js";
import type { MemoryLogStorage } from "../../src/raft/storage/memory-storage.js";
import type { SimDisk } from "./disk.js";
import type { Prng } from "./prng.js";

export interface Command {
  readonly requestId: string;
  readonly key: string;
  readonly value: string;
}

export interface KvState {
  readonly values: Map<string, string>;
  /** Request ids applied: duplicated proposals (a re-delivered forward) apply once. */
  readonly applied: Set<string>;
}

export function encodeKv(state: KvState): Uint8Array {
  return new TextEncoder().encode(JSON.stringify({ values: [...state.values], applied: [...state.applied] }));
}

export function decodeKv(data: Uint8Array): KvState {
  if (data.length === 0) return { values: new Map(), applied: new Set() };
  const parsed: unknown = JSON.parse(new TextDecoder().decode(data));
  if (typeof parsed !== "object" || parsed === null || !("values" in parsed) || !("applied" in parsed)) {
    throw new Error("corrupt kv snapshot");
  }
  const { values, applied } = parsed;
  if (!Array.isArray(values) || !Array.isArray(applied)) throw new Error("corrupt kv snapshot");
  const valueMap = new Map<string, string>();
  for (const pair of values) {
    if (!Array.isArray(pair) || typeof pair[0] !== "string" || typeof pair[1] !== "string") throw new Error("corrupt kv pair");
    valueMap.set(pair[0], pair[1]);
  }
  return { values: valueMap, applied: new Set(applied.filter((id): id is string => typeof id === "string")) };
}

export function encodeCommand(command: Command): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(command));
}

function decodeCommand(data: Uint8Array): Command {
  const parsed: unknown = JSON.parse(new TextDecoder().decode(data));
  if (
    typeof parsed === "object" &&
    parsed !== null &&
    "requestId" in parsed &&
    "key" in parsed &&
    "value" in parsed &&
    typeof parsed.requestId === "string" &&
    typeof parsed.key === "string" &&
    typeof parsed.value === "string"
  ) {
    return { requestId: parsed.requestId, key: parsed.key, value: parsed.value };
  }
  throw new Error("corrupt command");
}

/** What the cluster checks and records as a node works; implemented by the simulator. */
export interface NodeObserver {
  now(): number;
  send(message: Message): void;
  /** A Ready's entries were persisted on `node`: log matching. */
  persisted(node: SimNode, entries: readonly Entry[]): void;
  /** `node` applied `entry`: state-machine safety. */
  applied(node: SimNode, entry: Entry): void;
  committed(node: SimNode, commit: number): void;
  becameLeader(node: SimNode, term: number): void;
  putAcknowledged(requestId: string, at: number): void;
  getAnswered(requestId: string, value: string | null, at: number): void;
}

/** Snapshot every this many applied entries, keeping a tail for slow followers. */
const snapshotEveryEntries = 25;
const compactionTailEntries = 5;

export interface SimNodeOptions {
  readonly id: NodeId;
  readonly disk: SimDisk;
  readonly prng: Prng;
  readonly observer: NodeObserver;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  readonly logger: RaftLogger;
  /** Probability that a crash hits between write and fsync when one is due. */
  readonly crashInWrite: () => boolean;
}

export class SimNode {
  readonly id: NodeId;
  readonly disk: SimDisk;
  readonly raw: RawNode;
  readonly storage: MemoryLogStorage;
  kv: KvState;
  confState: ConfState;
  alive = true;
  readonly #options: SimNodeOptions;
  readonly #pendingPuts = new Set<string>();
  /** Read requests: request id -> key, and once answered, the read index. */
  readonly #pendingReads = new Map<string, { key: string; index: number | null }>();

  constructor(options: SimNodeOptions) {
    this.#options = options;
    this.id = options.id;
    this.disk = options.disk;
    const { storage, snapshot } = options.disk.recover();
    this.storage = storage;
    this.kv = decodeKv(snapshot.data);
    this.confState = snapshot.metadata.confState;
    this.raw = new RawNode({
      id: options.id,
      storage,
      electionTicks: 10,
      heartbeatTicks: 1,
      random: (bound) => options.prng.int(bound),
      preVote: options.preVote,
      checkQuorum: options.checkQuorum,
      maxSizePerMsgBytes: 1024,
      maxInflightMsgs: 8,
      maxUncommittedEntriesBytes: 64 * 1024,
      applied: snapshot.metadata.index,
      logger: options.logger,
    });
    // A torn write may have persisted a commit index no Ready reported: learn it here.
    options.observer.committed(this, this.raw.status().hardState.commit);
  }

  proposePut(command: Command): boolean {
    try {
      this.raw.propose(encodeCommand(command));
    } catch (error) {
      if (error instanceof ProposalDroppedError) return false;
      throw error;
    }
    this.#pendingPuts.add(command.requestId);
    return true;
  }

  requestRead(requestId: string, key: string): boolean {
    try {
      this.raw.readIndex(new TextEncoder().encode(requestId));
    } catch (error) {
      if (error instanceof ProposalDroppedError) return false;
      throw error;
    }
    this.#pendingReads.set(requestId, { key, index: null });
    return true;
  }

  #role: StateRole = "follower";

  /** Handles every pending Ready; returns false if the node crashed while writing. */
  drive(): boolean {
    while (this.alive && this.raw.hasReady()) {
      const ready = this.raw.ready();
      // As the real driver does: a leader's messages leave before its own fsync, so a crash
      // in the write below may follow appends that already reached followers.
      if (ready.softState !== null) this.#role = ready.softState.role;
      const sendFirst = this.#role === "leader";
      if (sendFirst) for (const message of ready.messages) this.#options.observer.send(message);
      if (!this.#persist(ready)) return false;
      if (!sendFirst) for (const message of ready.messages) this.#options.observer.send(message);
      this.#apply(ready);
      this.raw.advance(ready);
      this.#maybeSnapshot();
      this.#answerReads();
    }
    return this.alive;
  }

  #persist(ready: Ready): boolean {
    const disk = this.disk;
    if (ready.snapshot !== null) disk.write({ type: "snapshot", snapshot: ready.snapshot });
    for (const entry of ready.entries) disk.write({ type: "entry", entry });
    if (ready.hardState !== null) disk.write({ type: "hard-state", hardState: ready.hardState });
    if (disk.unsyncedCount() > 0 && this.#options.crashInWrite()) {
      // Crash between write and fsync: nothing of this Ready was sent or applied.
      disk.crash(this.#options.prng.int(disk.unsyncedCount() + 1));
      this.alive = false;
      return false;
    }
    disk.fsync();
    if (ready.snapshot !== null) this.storage.applySnapshot(ready.snapshot);
    this.storage.append(ready.entries);
    if (ready.hardState !== null) this.storage.setHardState(ready.hardState);
    this.#options.observer.persisted(this, ready.entries);
    if (ready.hardState !== null) this.#options.observer.committed(this, ready.hardState.commit);
    if (ready.softState?.role === "leader") this.#options.observer.becameLeader(this, this.raw.status().hardState.term);
    return true;
  }

  #apply(ready: Ready): void {
    if (ready.snapshot !== null) this.#applySnapshot(ready.snapshot);
    for (const entry of ready.committedEntries) {
      this.#options.observer.applied(this, entry);
      if (entry.type === "conf-change") {
        this.confState = this.raw.applyConfChange(decodeConfChange(entry.data));
      } else if (entry.data.length > 0) {
        this.#applyCommand(decodeCommand(entry.data));
      }
    }
    for (const readState of ready.readStates) {
      const requestId = new TextDecoder().decode(readState.requestContext);
      const pending = this.#pendingReads.get(requestId);
      if (pending !== undefined && pending.index === null) pending.index = readState.index;
    }
  }

  #applySnapshot(snapshot: Snapshot): void {
    this.kv = decodeKv(snapshot.data);
    this.confState = snapshot.metadata.confState;
  }

  #applyCommand(command: Command): void {
    if (this.kv.applied.has(command.requestId)) return;
    this.kv.applied.add(command.requestId);
    this.kv.values.set(command.key, command.value);
    if (this.#pendingPuts.delete(command.requestId)) {
      this.#options.observer.putAcknowledged(command.requestId, this.#options.observer.now());
    }
  }

  #answerReads(): void {
    const applied = this.raw.status().applied;
    for (const [requestId, pending] of this.#pendingReads) {
      if (pending.index === null || pending.index > applied) continue;
      this.#pendingReads.delete(requestId);
      this.#options.observer.getAnswered(requestId, this.kv.values.get(pending.key) ?? null, this.#options.observer.now());
    }
  }

  #maybeSnapshot(): void {
    const applied = this.raw.status().applied;
    const snapshotIndex = this.storage.snapshot().metadata.index;
    if (applied - snapshotIndex < snapshotEveryEntries) return;
    const snapshot = this.storage.createSnapshot(applied, this.confState, encodeKv(this.kv));
    const compactTo = applied - compactionTailEntries;
    if (compactTo >= this.storage.firstIndex()) this.storage.compact(compactTo);
    this.disk.saveSnapshot(snapshot, compactTo);
  }

  logSummary(): string {
    const first = this.storage.firstIndex();
    const last = this.storage.lastIndex();
    const terms: number[] = [];
    for (let index = Math.max(first, last - 20); index <= last; index += 1) terms.push(this.storage.term(index));
    return `node ${this.id}: first ${first} last ${last} tail terms ${terms.join(",")}`;
  }
}

export function entryFingerprint(entry: Entry): string {
  return `${entry.type}:${Buffer.from(entry.data).toString("base64")}`;
}
