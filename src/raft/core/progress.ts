import { invariant } from "./invariant.js";
import { majorityCommittedIndex, majorityVoteResult, type VoteResult } from "./quorum.js";
import type { ConfState, NodeId } from "./types.js";

/**
 * The append messages in flight to one follower, by the last index each carried. A full
 * window pauses replication until acknowledgements free slots, which bounds the memory a
 * slow follower costs the leader.
 */
export class Inflights {
  readonly #capacity: number;
  #indexes: number[] = [];

  constructor(capacity: number) {
    invariant(capacity > 0, "inflight capacity must be positive");
    this.#capacity = capacity;
  }

  add(index: number): void {
    invariant(!this.full(), "cannot add into a full inflights window");
    const last = this.#indexes.at(-1);
    invariant(last === undefined || index > last, "inflight indexes must increase");
    this.#indexes.push(index);
  }

  /** Frees every message whose last index is <= `index` (they were acknowledged). */
  freeLE(index: number): void {
    let count = 0;
    while (count < this.#indexes.length && (this.#indexes[count] ?? Infinity) <= index) count += 1;
    if (count > 0) this.#indexes = this.#indexes.slice(count);
  }

  freeFirstOne(): void {
    this.#indexes = this.#indexes.slice(1);
  }

  full(): boolean {
    return this.#indexes.length >= this.#capacity;
  }

  count(): number {
    return this.#indexes.length;
  }

  reset(): void {
    this.#indexes = [];
  }
}

export type ProgressState = "probe" | "replicate" | "snapshot";

/**
 * The leader's view of one follower. In "probe" it sends one append per heartbeat until it
 * finds the match point; in "replicate" it streams optimistically within the inflights
 * window; in "snapshot" it waits for a snapshot delivery to finish.
 */
export class Progress {
  match = 0;
  next: number;
  state: ProgressState = "probe";
  /** The snapshot index being sent while in "snapshot". */
  pendingSnapshot = 0;
  /** Heard from since the last check-quorum round. */
  recentActive = false;
  /** In "probe": an append was sent and no answer came back yet. */
  probeSent = false;
  isLearner: boolean;
  readonly inflights: Inflights;

  constructor(options: { next: number; inflightsMax: number; isLearner: boolean }) {
    this.next = options.next;
    this.isLearner = options.isLearner;
    this.inflights = new Inflights(options.inflightsMax);
  }

  #resetState(state: ProgressState): void {
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.state = state;
    this.inflights.reset();
  }

  becomeProbe(): void {
    // Coming back from a snapshot, the follower holds at least the snapshot's entries.
    if (this.state === "snapshot") {
      const pendingSnapshot = this.pendingSnapshot;
      this.#resetState("probe");
      this.next = Math.max(this.match + 1, pendingSnapshot + 1);
    } else {
      this.#resetState("probe");
      this.next = this.match + 1;
    }
  }

  becomeReplicate(): void {
    this.#resetState("replicate");
    this.next = this.match + 1;
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.#resetState("snapshot");
    this.pendingSnapshot = snapshotIndex;
  }

  /** Records an acknowledgement of `index`; returns whether match moved forward. */
  maybeUpdate(index: number): boolean {
    let updated = false;
    if (this.match < index) {
      this.match = index;
      updated = true;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, index + 1);
    return updated;
  }

  /** Streams ahead of acknowledgements in "replicate". */
  optimisticUpdate(index: number): void {
    this.next = index + 1;
  }

  /**
   * Handles a rejected append at `rejected`, with the follower's hint of where its log may
   * match. Returns false when the rejection is stale (an answer to an older message).
   */
  maybeDecreaseTo(rejected: number, matchHint: number): boolean {
    if (this.state === "replicate") {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1);
    this.probeSent = false;
    return true;
  }

  isPaused(): boolean {
    switch (this.state) {
      case "probe":
        return this.probeSent;
      case "replicate":
        return this.inflights.full();
      case "snapshot":
        return true;
    }
  }
}

/** Membership plus the leader's per-member progress and the votes of the current election. */
export class ProgressTracker {
  voters: NodeId[] = [];
  learners: NodeId[] = [];
  readonly progress = new Map<NodeId, Progress>();
  readonly votes = new Map<NodeId, boolean>();
  readonly inflightsMax: number;
  #sortedIds: readonly NodeId[] = [];
  readonly #matchOf = (id: NodeId): number => this.progress.get(id)?.match ?? 0;

  constructor(inflightsMax: number) {
    this.inflightsMax = inflightsMax;
  }

  confState(): ConfState {
    return { voters: [...this.voters], learners: [...this.learners] };
  }

  /**
   * Ids in ascending order, so that messages go out in a deterministic order. Cached: a
   * leader asks on every proposal and acknowledgement, and the copy and sort allocated
   * about 0.5 KB each time. The cache is checked against the map on every call (no
   * allocation) rather than invalidated by its writers, which use the map directly.
   */
  ids(): readonly NodeId[] {
    let current = this.#sortedIds.length === this.progress.size;
    for (const id of this.#sortedIds) current &&= this.progress.has(id);
    if (!current) this.#sortedIds = [...this.progress.keys()].sort((a, b) => a - b);
    return this.#sortedIds;
  }

  isVoter(id: NodeId): boolean {
    return this.voters.includes(id);
  }

  isSingleton(): boolean {
    return this.voters.length === 1;
  }

  committed(): number {
    return majorityCommittedIndex(this.voters, this.#matchOf);
  }

  /** Whether a quorum of voters was recently active; the caller itself counts as active. */
  quorumActive(self: NodeId): boolean {
    const active = new Map<NodeId, boolean>();
    for (const id of this.voters) {
      const progress = this.progress.get(id);
      active.set(id, id === self || progress?.recentActive === true);
    }
    return majorityVoteResult(this.voters, active) === "won";
  }

  resetVotes(): void {
    this.votes.clear();
  }

  recordVote(id: NodeId, granted: boolean): void {
    if (!this.votes.has(id)) this.votes.set(id, granted);
  }

  tallyVotes(): { granted: number; rejected: number; result: VoteResult } {
    let granted = 0;
    let rejected = 0;
    for (const id of this.voters) {
      const vote = this.votes.get(id);
      if (vote === true) granted += 1;
      if (vote === false) rejected += 1;
    }
    return { granted, rejected, result: majorityVoteResult(this.voters, this.votes) };
  }
}
