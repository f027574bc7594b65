// Test helpers for the raft core: build nodes on MemoryLogStorage and wire them into an
// in-memory network that delivers messages synchronously (after etcd's raft_test.go).
import { newMessage } from "../../../src/raft/core/message.js";
import { Raft, type RaftConfig } from "../../../src/raft/core/raft.js";
import type { Entry, Message, NodeId } from "../../../src/raft/core/types.js";
import { MemoryLogStorage } from "../../../src/raft/storage/memory-storage.js";

/** mulberry32: a tiny seeded PRNG, enough for election jitter in tests. */
export function seededRandom(seed: number): (bound: number) => number {
  let state = seed >>> 0;
  return (bound) => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const value = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    return Math.floor(value * bound);
  };
}

export interface TestRaftOptions {
  readonly election?: number;
  readonly heartbeat?: number;
  readonly storage?: MemoryLogStorage;
  readonly learners?: readonly NodeId[];
  readonly preVote?: boolean;
  readonly checkQuorum?: boolean;
  readonly maxSizePerMsgBytes?: number;
  readonly maxInflightMsgs?: number;
  readonly maxUncommittedEntriesBytes?: number;
  readonly applied?: number;
  readonly seed?: number;
}

/** A raft node whose storage holds `voters` (unless the given storage already has a config). */
export function newTestRaft(id: NodeId, voters: readonly NodeId[], options: TestRaftOptions = {}): Raft {
  const storage = options.storage ?? new MemoryLogStorage();
  if (storage.initialState().confState.voters.length === 0 && voters.length > 0) {
    storage.setConfState({ voters: [...voters], learners: [...(options.learners ?? [])] });
  }
  const config: RaftConfig = {
    id,
    storage,
    electionTicks: options.election ?? 10,
    heartbeatTicks: options.heartbeat ?? 1,
    random: seededRandom(options.seed ?? id),
    preVote: options.preVote ?? false,
    checkQuorum: options.checkQuorum ?? false,
    maxSizePerMsgBytes: options.maxSizePerMsgBytes ?? Number.MAX_SAFE_INTEGER,
    maxInflightMsgs: options.maxInflightMsgs ?? 256,
    applied: options.applied ?? 0,
    ...(options.maxUncommittedEntriesBytes === undefined ? {} : { maxUncommittedEntriesBytes: options.maxUncommittedEntriesBytes }),
  };
  return new Raft(config);
}

/**
 * Plays the driver's persist-then-advance for a node's unstable entries (etcd's tests call
 * it persisting): they move to its MemoryLogStorage and, on a leader, join the quorum.
 */
export function persistLocal(raft: Raft): void {
  const storage = raft.log.storage;
  if (!(storage instanceof MemoryLogStorage)) throw new Error("persistLocal needs a MemoryLogStorage");
  const snapshot = raft.log.unstable.snapshot;
  if (snapshot !== null) {
    storage.applySnapshot(snapshot);
    raft.log.stableSnapTo(snapshot.metadata.index);
  }
  const last = raft.log.unstable.entries.at(-1);
  if (last === undefined) return;
  storage.append([...raft.log.unstable.entries]);
  raft.log.stableTo(last.index, last.term);
  raft.localAppendStable(last.index, last.term);
}

export function readMessages(raft: Raft): Message[] {
  const messages = raft.messages;
  raft.messages = [];
  return messages;
}

export function entry(term: number, index: number, data = ""): Entry {
  return { term, index, type: "normal", data: new TextEncoder().encode(data) };
}

/** A storage already holding `entries` (terms given per index, starting at 1). */
export function storageWithTerms(terms: readonly number[], voters: readonly NodeId[]): MemoryLogStorage {
  const storage = new MemoryLogStorage();
  storage.append(terms.map((term, offset) => entry(term, offset + 1)));
  storage.setConfState({ voters: [...voters], learners: [] });
  return storage;
}

export function message(fields: Partial<Message> & Pick<Message, "type" | "from" | "to">): Message {
  return newMessage(fields);
}

/** Ticks until the node's randomized timeout fires (at most 2x the election timeout). */
export function tickUntilElection(raft: Raft): void {
  for (let tick = 0; tick < 2 * raft.electionTimeout && raft.state === "follower"; tick += 1) raft.tick();
}

/**
 * Synchronous message delivery between rafts, with per-link drops
 * (etcd's `network`). `null` members stand for nodes that swallow everything.
 */
export class Network {
  readonly nodes = new Map<NodeId, Raft>();
  readonly #dropped = new Set<string>();
  readonly delivered: Message[] = [];

  constructor(nodes: readonly (Raft | null)[], ids: readonly NodeId[] = nodes.map((_, index) => index + 1)) {
    nodes.forEach((node, index) => {
      const id = ids[index];
      if (node !== null && id !== undefined) this.nodes.set(id, node);
    });
  }

  static ofSize(size: number, options: TestRaftOptions = {}): Network {
    const ids = Array.from({ length: size }, (_, index) => index + 1);
    return new Network(ids.map((id) => newTestRaft(id, ids, options)));
  }

  node(id: NodeId): Raft {
    const node = this.nodes.get(id);
    if (node === undefined) throw new Error(`no node ${id}`);
    return node;
  }

  /** Steps `messages` and everything they cause until the network is quiet. */
  send(...messages: Message[]): void {
    const queue = [...messages];
    for (let delivered = 0; queue.length > 0; delivered += 1) {
      if (delivered > 100_000) throw new Error("network did not quiesce");
      const next = queue.shift();
      if (next === undefined) break;
      const node = this.nodes.get(next.to);
      if (node === undefined || this.#filtered(next)) continue;
      this.delivered.push(next);
      node.step(next);
      persistLocal(node);
      queue.push(...readMessages(node));
    }
  }

  #filtered(message: Message): boolean {
    return this.#dropped.has(`${message.from}->${message.to}`);
  }

  cut(a: NodeId, b: NodeId): void {
    this.#dropped.add(`${a}->${b}`);
    this.#dropped.add(`${b}->${a}`);
  }

  isolate(id: NodeId): void {
    for (const other of this.nodes.keys()) if (other !== id) this.cut(id, other);
  }

  recover(): void {
    this.#dropped.clear();
  }

  campaign(id: NodeId): void {
    this.send(message({ type: "hup", from: id, to: id }));
  }

  propose(id: NodeId, data = "somedata"): void {
    this.send(message({ type: "prop", from: id, to: id, entries: [entry(0, 0, data)] }));
  }
}
