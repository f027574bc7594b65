import { InvalidArgumentError } from "../../common/errors.js";
import { encodeConfChange } from "./conf-change.js";
import { invariant } from "./invariant.js";
import { isLocalMessageType, newMessage } from "./message.js";
import type { ProgressState } from "./progress.js";
import { Raft, type RaftConfig } from "./raft.js";
import type { ConfChange, ConfState, Entry, HardState, Message, NodeId, Ready, SoftState } from "./types.js";

export interface ProgressStatus {
  readonly match: number;
  readonly next: number;
  readonly state: ProgressState;
  readonly isLearner: boolean;
  readonly recentActive: boolean;
  readonly pendingSnapshot: number;
  readonly inflights: number;
}

export interface RaftStatus {
  readonly id: NodeId;
  readonly hardState: HardState;
  readonly softState: SoftState;
  readonly applied: number;
  readonly lastIndex: number;
  readonly confState: ConfState;
  readonly leadTransferee: NodeId;
  /** Per member, on the leader only (null elsewhere). */
  readonly progress: ReadonlyMap<NodeId, ProgressStatus> | null;
}

function hardStateEqual(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

/**
 * The driver's handle on a raft node (after etcd rawnode.go). Inputs: tick, step, propose,
 * readIndex, transferLeader, conf changes. Output: Ready batches, which the driver handles
 * in this order, then acknowledges:
 *
 *  1. Persist `snapshot`, `entries` and `hardState` to stable storage and fsync. Entries
 *     replace any persisted entries from the first one's index on. Make the entries and
 *     hard state of one Ready durable together (one WAL batch): the membership safety
 *     argument assumes an appended conf change comes with the commit index it was sent
 *     with. (The core tolerates a torn batch by refusing to campaign until it catches up.)
 *  2. Send `messages`. Votes and append answers in a Ready depend on the hard state and
 *     entries of the same Ready, which is why step 1 comes first. A leader's messages
 *     (appends, heartbeats) may leave before step 1, while its fsync runs: the leader's
 *     own entries count toward the commit quorum only from advance() on.
 *  3. Apply `snapshot`, then `committedEntries` to the state machine, calling
 *     applyConfChange for each "conf-change" entry; serve `readStates` once applied.
 *  4. Call advance(ready). Only then may ready() be called again (hasReady() is false until
 *     then). step/tick/propose may be called between ready() and advance().
 */
export class RawNode {
  readonly #raft: Raft;
  #previousSoftState: SoftState;
  #previousHardState: HardState;
  #outstanding = false;
  /** The last committed index handed to the driver, by ready() or takeCommittedEntries(). */
  #handedOut = 0;

  constructor(config: RaftConfig) {
    this.#raft = new Raft(config);
    this.#previousSoftState = this.#raft.softState();
    this.#previousHardState = this.#raft.hardState();
  }

  /** Advances logical time by one tick (election and heartbeat timeouts count ticks). */
  tick(): void {
    this.#raft.tick();
  }

  /** Starts an election now (a pre-vote first when enabled). */
  campaign(): void {
    this.#raft.step(newMessage({ type: "hup", from: this.#raft.id, to: this.#raft.id }));
  }

  /**
   * Proposes `data` for the log. Throws ProposalDroppedError when no leader is known, a
   * leadership transfer is in progress, or the uncommitted-bytes limit is reached. A
   * follower forwards the proposal; success means only that it was accepted or forwarded.
   */
  propose(data: Uint8Array): void {
    this.proposeAll([data]);
  }

  /**
   * Proposes several entries in one step: the leader appends them together and sends one
   * append per follower for the lot, instead of one per entry. All or none are accepted.
   */
  proposeAll(data: readonly Uint8Array[]): void {
    if (data.length === 0) return;
    const entries = data.map((bytes) => ({ term: 0, index: 0, type: "normal" as const, data: bytes }));
    this.#raft.step(newMessage({ type: "prop", from: this.#raft.id, to: this.#raft.id, entries }));
  }

  /** Whether this node is leader right now (softState in the next Ready may say so later). */
  isLeader(): boolean {
    return this.#raft.state === "leader";
  }

  /**
   * Proposes a membership change. On the leader it throws ProposalDroppedError while
   * another change is unapplied, before the leader has committed an entry of its term, or
   * for an id that was removed; a follower forwards it and the leader drops it silently.
   */
  proposeConfChange(change: ConfChange): void {
    const entry = { term: 0, index: 0, type: "conf-change" as const, data: encodeConfChange(change) };
    this.#raft.step(newMessage({ type: "prop", from: this.#raft.id, to: this.#raft.id, entries: [entry] }));
  }

  /**
   * Feeds a message from a peer. Throws InvalidArgumentError for local-only types; drops
   * (with a debug log) answers from members it does not know, and messages from removed ids.
   */
  step(message: Message): void {
    if (isLocalMessageType(message.type)) {
      throw new InvalidArgumentError(`message type "${message.type}" is local and cannot come from a peer`);
    }
    if (!this.#raft.isKnownPeerResponse(message)) {
      this.#raft.logger.debug({ from: message.from, type: message.type }, "dropped an answer from an unknown member");
      return;
    }
    this.#raft.step(message);
  }

  /**
   * Asks for a linearizable read point; the answer arrives as a ReadState with the same
   * context. Throws ProposalDroppedError when no leader is known or too many reads wait.
   */
  readIndex(context: Uint8Array): void {
    this.#raft.step(newMessage({ type: "read-index", from: this.#raft.id, to: this.#raft.id, context }));
  }

  /** Asks the leader to hand leadership to `to` (etcd's convention: `from` is the transferee). */
  transferLeader(to: NodeId): void {
    this.#raft.step(newMessage({ type: "transfer-leader", from: to, to: this.#raft.id }));
  }

  /** Applies a committed conf-change entry; returns the configuration to store with snapshots. */
  applyConfChange(change: ConfChange): ConfState {
    return this.#raft.applyConfChange(change);
  }

  reportUnreachable(id: NodeId): void {
    this.#raft.step(newMessage({ type: "unreachable", from: id, to: this.#raft.id }));
  }

  reportSnapshot(id: NodeId, status: "finish" | "failure"): void {
    this.#raft.step(newMessage({ type: "snap-status", from: id, to: this.#raft.id, reject: status === "failure" }));
  }

  hasReady(): boolean {
    if (this.#outstanding) return false;
    const raft = this.#raft;
    // Fields compared in place, not through softState()/hardState(): the driver asks after
    // every step, and the two objects were garbage each time.
    if (raft.lead !== this.#previousSoftState.leader || raft.state !== this.#previousSoftState.role) return true;
    const hard = this.#previousHardState;
    if (raft.term !== hard.term || raft.vote !== hard.vote || raft.log.committed !== hard.commit) return true;
    if (raft.log.hasPendingSnapshot()) return true;
    if (raft.messages.length > 0 || raft.log.unstableEntries().length > 0) return true;
    if (raft.log.hasNextCommittedEntries()) return true;
    return raft.readStates.length > 0;
  }

  /** The next batch of work; see the class comment for the order. */
  ready(): Ready {
    invariant(!this.#outstanding, "ready() called again before advance()");
    const raft = this.#raft;
    const soft = raft.softState();
    const hard = raft.hardState();
    const softChanged = soft.leader !== this.#previousSoftState.leader || soft.role !== this.#previousSoftState.role;
    const ready: Ready = {
      softState: softChanged ? soft : null,
      hardState: hardStateEqual(hard, this.#previousHardState) ? null : hard,
      readStates: raft.readStates,
      entries: [...raft.log.unstableEntries()],
      snapshot: raft.log.unstable.snapshot,
      committedEntries: raft.log.nextCommittedEntries(raft.maxCommittedSizePerReady),
      messages: raft.messages,
    };
    this.#handedOut = Math.max(this.#handedOut, ready.committedEntries.at(-1)?.index ?? 0);
    raft.messages = [];
    raft.readStates = [];
    if (softChanged) this.#previousSoftState = soft;
    this.#outstanding = true;
    return ready;
  }

  /**
   * Hands out the messages a leader produced since the last ready(), so that the driver can
   * send them while that Ready's fsync is still running (pipelining: new proposals go to
   * the followers at once instead of after the leader's own disk write). Only a leader's
   * messages qualify, and only once its term is durable (a leader elected in the Ready
   * being persisted waits for advance()): its appends and heartbeats never depend on its
   * own unpersisted state, because its entries count toward commit only from advance() on.
   * Returns [] otherwise; the messages then come with the next Ready as usual.
   */
  takeLeaderMessages(): readonly Message[] {
    const raft = this.#raft;
    if (raft.state !== "leader" || raft.term !== this.#previousHardState.term || raft.messages.length === 0) return [];
    const messages = raft.messages;
    raft.messages = [];
    return messages;
  }

  /**
   * Hands out entries that became committed since the outstanding Ready was made, so that
   * the driver can apply them (and answer their proposals) while that Ready's fsync still
   * runs: on a leader whose own disk is the slow one, two followers' acknowledgements then
   * suffice, as raft allows. The caller must have applied the outstanding Ready's committed
   * entries already, and must apply these at once; they count as applied from now on.
   * Returns [] without an outstanding Ready, while a snapshot is pending (entries after it
   * must wait for it), and stops before a conf change (those go through Readies).
   */
  takeCommittedEntries(): readonly Entry[] {
    const raft = this.#raft;
    if (!this.#outstanding || raft.log.hasPendingSnapshot()) return [];
    const from = Math.max(this.#handedOut, raft.log.applied) + 1;
    if (from > raft.log.committed || from < raft.log.firstIndex()) return [];
    const entries = raft.log.slice(from, raft.log.committed + 1, raft.maxCommittedSizePerReady);
    const confChange = entries.findIndex((entry) => entry.type === "conf-change");
    const taken = confChange === -1 ? entries : entries.slice(0, confChange);
    const last = taken.at(-1);
    if (last === undefined) return [];
    this.#handedOut = last.index;
    raft.log.appliedTo(last.index);
    raft.reduceUncommittedSize(taken);
    return taken;
  }

  /** Acknowledges that `ready` was persisted, sent and applied. */
  advance(ready: Ready): void {
    invariant(this.#outstanding, "advance() without an outstanding ready()");
    const raft = this.#raft;
    const lastEntry = ready.entries.at(-1);
    invariant(
      lastEntry === undefined || raft.log.storage.lastIndex() >= lastEntry.index,
      "advance() called before the Ready's entries were appended to storage",
    );
    if (ready.hardState !== null) this.#previousHardState = ready.hardState;
    raft.reduceUncommittedSize(ready.committedEntries);
    const applied = Math.max(ready.committedEntries.at(-1)?.index ?? 0, ready.snapshot?.metadata.index ?? 0);
    if (applied > raft.log.applied) raft.log.appliedTo(applied);
    if (lastEntry !== undefined) {
      raft.log.stableTo(lastEntry.index, lastEntry.term);
      raft.localAppendStable(lastEntry.index, lastEntry.term);
    }
    if (ready.snapshot !== null) raft.log.stableSnapTo(ready.snapshot.metadata.index);
    this.#outstanding = false;
  }

  status(): RaftStatus {
    const raft = this.#raft;
    let progress: Map<NodeId, ProgressStatus> | null = null;
    if (raft.state === "leader") {
      progress = new Map();
      for (const [id, entry] of raft.tracker.progress) {
        progress.set(id, {
          match: entry.match,
          next: entry.next,
          state: entry.state,
          isLearner: entry.isLearner,
          recentActive: entry.recentActive,
          pendingSnapshot: entry.pendingSnapshot,
          inflights: entry.inflights.count(),
        });
      }
    }
    return {
      id: raft.id,
      hardState: raft.hardState(),
      softState: raft.softState(),
      applied: raft.log.applied,
      lastIndex: raft.log.lastIndex(),
      confState: raft.confState(),
      leadTransferee: raft.leadTransferee,
      progress,
    };
  }
}
