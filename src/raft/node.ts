import assert from "node:assert/strict";
import { randomInt } from "node:crypto";
import diagnosticsChannel from "node:diagnostics_channel";
import { addAbortListener } from "node:events";
import { setImmediate as setImmediatePromise } from "node:timers/promises";

import type { Clock } from "../common/clock.js";
import { systemClock } from "../common/clock.js";
import {
  CancelledError,
  errorMessage,
  FailedPreconditionError,
  InvalidArgumentError,
  throwIfAborted,
  UnavailableError,
} from "../common/errors.js";
import type { Logger } from "../common/logger.js";
import { decodeConfChange, ProposalDroppedError, RawNode } from "./core/index.js";
import type { ConfChange, ConfState, Entry, Message, NodeId, Ready, StateRole } from "./core/index.js";
import {
  decodeEntryEnvelope,
  decodeSnapshotEnvelope,
  encodeEntryEnvelope,
  encodeSnapshotEnvelope,
  type SnapshotBytes,
} from "./node/envelope.js";
import { coalesceMessages } from "./node/coalesce.js";
import { CommitNoticeHold, commitNoticeDelayMs } from "./node/commit-notices.js";
import { PendingReads } from "./node/pending-reads.js";
import type { SnapshotFileOpener } from "./snap/snapshotter.js";
import type { RaftTransport } from "./transport/transport.js";
import { DiskLogStorage } from "./wal/disk-storage.js";
import type { SegmentOpener } from "./wal/wal.js";

export const tickMsDefault = 100;
export const electionTicksDefault = 10;
export const heartbeatTicksDefault = 1;
export const snapshotEveryEntriesDefault = 10_000;
/** Entries kept behind a snapshot so that a slightly lagging follower gets entries, not a snapshot. */
export const snapshotCatchUpEntriesDefault = 5_000;
/** A proposal must fit in one gRPC message with room to spare. */
export const proposalBytesMax = 1024 * 1024;
export const appendMessageBytesMax = 1024 * 1024;
export const inflightAppendMessagesMax = 256;
/** Proposals waiting to be applied; beyond this propose() refuses (the caller should back off). */
export const pendingProposalsMax = 100_000;
/** Membership changes waiting to apply: the core takes one at a time, so more is a caller's bug. */
export const pendingConfChangesMax = 16;

/** The state a RaftNode replicates. Every method runs on the node's apply path, in log order. */
export interface StateMachine {
  /** Applies one committed entry. Must be deterministic: every member applies the same sequence. */
  apply(entry: AppliedEntry): void;
  /**
   * The whole state as of the last applied entry, for a snapshot. The state is the one at
   * the call; its bytes may follow as a promise (a large state encoded in slices, so that
   * the event loop is not held for all of it), provided later applies do not change them.
   */
  snapshot(): SnapshotBytes | Promise<SnapshotBytes>;
  /**
   * Replaces the whole state with one produced by snapshot() (possibly on another member).
   * May finish later, as a promise (a large state loaded in slices): the node applies
   * nothing after the snapshot, and takes no snapshot, until it has.
   */
  restore(data: Uint8Array): void | Promise<void>;
}

export interface AppliedEntry {
  readonly index: number;
  readonly term: number;
  readonly data: Uint8Array;
}

export interface RaftMember {
  readonly id: NodeId;
  /** The member's raft transport address, "host:port". */
  readonly address: string;
}

export interface LeaderChange {
  readonly nodeId: NodeId;
  readonly leader: NodeId;
  readonly term: number;
  readonly role: StateRole;
}

/** Published on every leader or role change seen by a node. */
export const leaderChangedChannel = diagnosticsChannel.channel("shoal:raft:leader-changed");

export interface RaftNodeOptions {
  readonly id: NodeId;
  /** The node's data directory (WAL and snapshots); created if missing. */
  readonly dataDir: string;
  readonly stateMachine: StateMachine;
  /** Owned by the node from now on: it sets the handler and closes it on close(). */
  readonly transport: RaftTransport;
  readonly logger: Logger;
  /**
   * The address book to start with. With `bootstrap: true` and an empty data directory
   * these members (self included) become the voters of a new cluster; otherwise the list
   * only tells the transport where peers are until the log's own membership takes over.
   */
  readonly members: readonly RaftMember[];
  readonly bootstrap: boolean;
  readonly clock?: Clock;
  /** An integer in [0, bound); crypto.randomInt by default. */
  readonly random?: (bound: number) => number;
  readonly tickMs?: number;
  readonly electionTicks?: number;
  readonly heartbeatTicks?: number;
  /** Applied entries between two snapshots of this member, at least. */
  readonly snapshotEveryEntries?: number;
  /**
   * Each gap between snapshots is snapshotEveryEntries plus a draw from [0, this] (with
   * `random`; half of snapshotEveryEntries by default), so that members do not all snapshot
   * at the same index. A snapshot holds a member's event loop and disk for a while: taken
   * by all three members at once on a two-core machine, they held up commits for 25-50 ms
   * (issue 4), while one at a time leaves two members to make a quorum. hashicorp/raft
   * staggers its snapshots too.
   */
  readonly snapshotSpreadEntries?: number;
  readonly snapshotCatchUpEntries?: number;
  readonly segmentBytesTarget?: number;
  /** Fault-injection seam for tests (a failing fsync); see WalOptions.openSegment. */
  readonly walOpenSegment?: SegmentOpener;
  /** Fault- and timing-injection seam for tests (a slow snapshot write); see Snapshotter. */
  readonly snapshotOpenFile?: SnapshotFileOpener;
  /** Called once with a fatal error (a failed fsync); the default rethrows it to crash the process. */
  readonly onFatalError?: (error: Error) => void;
}

export interface RaftNodeStatus {
  readonly id: NodeId;
  readonly leader: NodeId;
  readonly role: StateRole;
  readonly term: number;
  readonly commit: number;
  readonly applied: number;
  /** The index of the newest local snapshot (0 before the first). */
  readonly snapshotIndex: number;
  readonly members: ReadonlyMap<NodeId, string>;
  /** WAL fsyncs since start: with group commit, far fewer than proposals. */
  readonly walSyncs: number;
}

/**
 * A proposal reached a node that is not the leader. Proposals are not forwarded: the caller
 * (which knows its own retry policy) should send it to `leader` (0 when none is known).
 */
export class NotLeaderError extends UnavailableError {
  readonly leader: NodeId;

  constructor(leader: NodeId, address: string | undefined) {
    super(
      leader === 0
        ? "this manager is not the raft leader and no leader is known: an election is under way, or quorum is lost (fewer than half of the managers reachable)"
        : `this manager is not the raft leader: send the request to member ${leader}${address === undefined ? "" : ` at ${address}`}`,
    );
    this.leader = leader;
  }
}

interface PendingProposal {
  /** The leader term it was proposed in; a later term means leadership was lost meanwhile. */
  readonly term: number;
  readonly resolve: (entry: { index: number; term: number }) => void;
  readonly reject: (error: Error) => void;
  readonly disposeAbort: () => void;
}

const doNothing = (): void => undefined;

interface QueuedProposal {
  readonly sequence: number;
  /** The entry envelope, ready for the log. */
  readonly data: Uint8Array;
}

interface PendingConfChange {
  readonly key: string;
  /** The leader term it was proposed in, as for PendingProposal. */
  readonly term: number;
  readonly resolve: (state: ConfState) => void;
  readonly reject: (error: Error) => void;
  readonly disposeAbort: () => void;
}

type NodeState = "running" | "closing" | "closed" | "failed";

function confChangeKey(change: ConfChange): string {
  return `${change.type}:${change.nodeId}`;
}

/**
 * The raft driver: it owns every I/O of one raft member and runs the pure core (RawNode).
 *
 * Each Ready is handled in this order (etcd raft's README):
 *  1. persist: the Ready's snapshot file, entries and hard state, with one fsync;
 *  2. send: the Ready's messages, which may depend on what step 1 made durable (a vote, an
 *     append acknowledgement), so they never leave before it; a leader's messages are the
 *     exception and leave before step 1 (see RawNode);
 *  3. apply: the snapshot, then committed entries, to the StateMachine (conf changes to the
 *     core), then answer proposals and reads that became applied. Without a snapshot this
 *     runs while step 1's fsync does: committed entries are durable on a quorum already,
 *     so answering them need not wait for the disk write of the newer entries that share
 *     their Ready (etcd's server applies in parallel with its WAL write the same way).
 *     Entries that commit while the fsync runs (say on two followers' acknowledgements
 *     while the leader's own disk is slow) are applied at once too;
 *  4. advance(): tell the core the Ready is done, so it may hand out the next one.
 *
 * Every snapshotEveryEntries applied entries the state machine's snapshot is taken at the
 * end of a Ready (it must match the applied index), but its file is written, and the log
 * compacted behind it, in the background while the next Readies go on: see #startSnapshot.
 *
 * Group commit: incoming messages only step the core, and propose() only queues; handling
 * is scheduled with setImmediate, so everything arriving within one event-loop turn (and
 * while the previous fsync runs) lands in one Ready and one fsync. The queued proposals
 * enter the core as one batch, so the leader sends one append per follower for the batch
 * (and gets one answer back) instead of one per proposal. A leader does not hold them back
 * while a Ready's fsync runs: their appends leave at once (pipelining).
 *
 * Proposals are answered only by the leader: propose() on a follower throws NotLeaderError
 * naming the leader. A proposal's promise resolves when its entry is applied here, and is
 * rejected with UnavailableError when this node stops being leader first (its entry may
 * still commit under the next leader: the outcome is unknown, as with any lost reply). A
 * leader never overwrites its own entries, so an overwritten proposal implies a lost
 * leadership and is covered by the same rejection.
 */
export class RaftNode {
  readonly id: NodeId;
  readonly #options: RaftNodeOptions;
  readonly #logger: Logger;
  readonly #clock: Clock;
  readonly #storage: DiskLogStorage;
  readonly #transport: RaftTransport;
  readonly #stateMachine: StateMachine;
  readonly #rawNode: RawNode;
  readonly #members: Map<NodeId, string>;
  readonly #nonce: number;
  readonly #tickMs: number;
  readonly #electionTicks: number;
  readonly #snapshotEveryEntries: number;
  readonly #snapshotSpreadEntries: number;
  readonly #random: (bound: number) => number;
  /** Applied entries past #snapshotIndex at which the next snapshot is due (see snapshotEveryEntries). */
  #snapshotGap: number;
  readonly #snapshotCatchUpEntries: number;
  readonly #proposals = new Map<number, PendingProposal>();
  /** Accepted by propose() since the last event-loop turn, not yet stepped into the core. */
  #queuedProposals: QueuedProposal[] = [];
  readonly #confChanges: PendingConfChange[] = [];
  readonly #reads: PendingReads;
  readonly #leaderListeners = new Set<(change: LeaderChange) => void>();
  /** Every message a leader sends goes through here; see CommitNoticeHold. */
  readonly #leaderSends: CommitNoticeHold;
  #confState: ConfState;
  #term: number;
  #sequence = 0;
  #applied: number;
  #snapshotIndex: number;
  #leader: NodeId = 0;
  #role: StateRole = "follower";
  #state: NodeState = "running";
  #scheduled = false;
  /** A Ready loop is running (set before it starts: it may finish without yielding). */
  #processActive = false;
  /** The latest Ready loop, for close() to wait on; settled once #processActive is false. */
  #processing: Promise<void> = Promise.resolve();
  /** A local snapshot being written and the log compacted behind it; one at a time. */
  #snapshotting: Promise<void> | null = null;
  #cancelTick: (() => void) | null = null;

  private constructor(options: RaftNodeOptions, storage: DiskLogStorage, members: Map<NodeId, string>, applied: number) {
    this.id = options.id;
    this.#options = options;
    this.#logger = options.logger.child({ component: "raft-node", node: options.id });
    this.#clock = options.clock ?? systemClock;
    this.#storage = storage;
    this.#transport = options.transport;
    this.#stateMachine = options.stateMachine;
    this.#members = members;
    this.#applied = applied;
    this.#snapshotIndex = storage.snapshot().metadata.index;
    this.#confState = storage.initialState().confState;
    this.#term = storage.initialState().hardState.term;
    this.#tickMs = options.tickMs ?? tickMsDefault;
    this.#electionTicks = options.electionTicks ?? electionTicksDefault;
    this.#snapshotEveryEntries = options.snapshotEveryEntries ?? snapshotEveryEntriesDefault;
    this.#snapshotCatchUpEntries = options.snapshotCatchUpEntries ?? snapshotCatchUpEntriesDefault;
    const random = options.random ?? ((bound: number) => randomInt(bound));
    this.#random = random;
    this.#snapshotSpreadEntries = options.snapshotSpreadEntries ?? Math.floor(this.#snapshotEveryEntries / 2);
    // A fresh nonce per start: a proposal or a read from a previous run is never mistaken for a new one.
    this.#nonce = random(2 ** 48 - 1);
    this.#snapshotGap = this.#drawSnapshotGap();
    this.#reads = new PendingReads({
      clock: this.#clock,
      timeoutMs: this.#tickMs * this.#electionTicks * 2,
      nonce: this.#nonce,
    });
    this.#leaderSends = new CommitNoticeHold({
      clock: this.#clock,
      delayMs: commitNoticeDelayMs,
      send: (messages) => this.#transport.send(messages),
    });
    this.#rawNode = new RawNode({
      id: options.id,
      storage,
      electionTicks: this.#electionTicks,
      heartbeatTicks: options.heartbeatTicks ?? heartbeatTicksDefault,
      random,
      preVote: true,
      checkQuorum: true,
      maxSizePerMsgBytes: appendMessageBytesMax,
      maxInflightMsgs: inflightAppendMessagesMax,
      applied,
      logger: this.#logger,
    });
  }

  /**
   * Opens the data directory (replaying snapshot and WAL), restores the state machine from
   * the snapshot, bootstraps a new cluster if asked and the directory is empty, and starts
   * ticking and receiving. Throws WalCorruptionError for a damaged log.
   */
  static async start(options: RaftNodeOptions): Promise<RaftNode> {
    if (!Number.isSafeInteger(options.id) || options.id <= 0) {
      throw new InvalidArgumentError(`raft node id must be a positive integer, got ${options.id}`);
    }
    const storage = await DiskLogStorage.open({
      dir: options.dataDir,
      logger: options.logger,
      ...(options.segmentBytesTarget === undefined ? {} : { segmentBytesTarget: options.segmentBytesTarget }),
      ...(options.walOpenSegment === undefined ? {} : { openSegment: options.walOpenSegment }),
      ...(options.snapshotOpenFile === undefined ? {} : { openSnapshotFile: options.snapshotOpenFile }),
    });
    try {
      const members = new Map(options.members.map((member) => [member.id, member.address]));
      const fresh = storage.lastIndex() === 0 && storage.initialState().hardState.term === 0;
      if (fresh && options.bootstrap) await RaftNode.#bootstrap(options, storage, members);
      const snapshot = storage.snapshot();
      if (snapshot.metadata.index > 0) {
        const envelope = decodeSnapshotEnvelope(snapshot.data);
        await options.stateMachine.restore(envelope.data);
        for (const [id, address] of envelope.members) members.set(id, address);
      }
      const node = new RaftNode(options, storage, members, snapshot.metadata.index);
      node.#begin();
      return node;
    } catch (error) {
      await storage.close();
      await options.transport.close();
      throw error;
    }
  }

  /** A new cluster starts from an identical snapshot on every founding member: index 1, term 1. */
  static async #bootstrap(options: RaftNodeOptions, storage: DiskLogStorage, members: Map<NodeId, string>): Promise<void> {
    if (!members.has(options.id)) {
      throw new InvalidArgumentError(`bootstrap members must include this node (${options.id})`);
    }
    const voters = [...members.keys()].sort((a, b) => a - b);
    const data = await encodeSnapshotEnvelope({ members, data: await options.stateMachine.snapshot() });
    await storage.save({
      snapshot: { metadata: { index: 1, term: 1, confState: { voters, learners: [] } }, data },
      entries: [],
      hardState: { term: 1, vote: 0, commit: 1 },
    });
  }

  #begin(): void {
    for (const [id, address] of this.#members) this.#transport.addPeer(id, address);
    this.#transport.setHandler({
      step: (message) => this.#step(message),
      reportUnreachable: (id) => {
        if (this.#state !== "running") return;
        this.#rawNode.reportUnreachable(id);
        this.#schedule();
      },
      reportSnapshot: (id, status) => {
        if (this.#state !== "running") return;
        this.#rawNode.reportSnapshot(id, status);
        this.#schedule();
      },
    });
    this.#scheduleTick();
    this.#schedule();
  }

  #step(message: Message): void {
    if (this.#state !== "running") return;
    try {
      this.#rawNode.step(message);
    } catch (error) {
      // A malformed message from a peer is dropped; anything else (a broken invariant of
      // the core) must stop this node.
      if (!(error instanceof InvalidArgumentError)) {
        this.#fail(error instanceof Error ? error : new Error(errorMessage(error)));
        return;
      }
      this.#logger.warn({ from: message.from, type: message.type, error: error.message }, "dropped a peer message");
      return;
    }
    this.#schedule();
  }

  #scheduleTick(): void {
    this.#cancelTick = this.#clock.setTimer(this.#tickMs, () => {
      if (this.#state !== "running") return;
      this.#rawNode.tick();
      this.#schedule();
      this.#scheduleTick();
    });
  }

  #schedule(): void {
    if (this.#scheduled || this.#state !== "running") return;
    this.#scheduled = true;
    setImmediate(this.#onScheduled);
  }

  /** Bound once: the driver schedules itself several times per proposal. */
  readonly #onScheduled = (): void => {
    this.#scheduled = false;
    if (this.#state !== "running") return;
    try {
      this.#flushProposals();
      // A running loop re-checks hasReady() before it ends, so it picks the rest up too.
      if (this.#processActive) {
        this.#sendLeaderMessagesEarly();
        this.#applyCommittedEarly();
        return;
      }
    } catch (error) {
      this.#fail(error instanceof Error ? error : new Error(errorMessage(error)));
      return;
    }
    this.#processActive = true;
    this.#processing = this.#process();
  };

  /**
   * While a Ready's fsync runs, a leader's new appends (for proposals that arrived
   * meanwhile) and commit notices leave at once rather than after it: the followers'
   * disk writes overlap the leader's. See RawNode.takeLeaderMessages for why that is safe.
   */
  #sendLeaderMessagesEarly(): void {
    const messages = this.#rawNode.takeLeaderMessages();
    if (messages.length > 0) this.#leaderSends.send(coalesceMessages(messages));
  }

  /**
   * Applies (and answers) entries that committed while a Ready's fsync runs, e.g. on the
   * two followers' acknowledgements while the leader's own disk is slow. The Ready's own
   * committed entries were applied before its fsync started (see #handleReady).
   */
  #applyCommittedEarly(): void {
    const entries = this.#rawNode.takeCommittedEntries();
    if (entries.length === 0) return;
    for (const entry of entries) this.#applyEntry(entry);
    this.#reads.onApplied(this.#applied);
  }

  /** Steps the proposals queued since the last turn into the core, as one batch. */
  #flushProposals(): void {
    if (this.#queuedProposals.length === 0) return;
    const batch = this.#queuedProposals;
    this.#queuedProposals = [];
    if (!this.#rawNode.isLeader()) {
      // Leadership was lost after propose() accepted them: a follower would forward them,
      // and the caller could not know whether they committed. Refusing keeps that certain.
      this.#rejectQueued(batch, new NotLeaderError(this.#leader, this.#members.get(this.#leader)));
      return;
    }
    try {
      this.#rawNode.proposeAll(batch.map((proposal) => proposal.data));
    } catch (error) {
      if (!(error instanceof ProposalDroppedError)) throw error;
      this.#rejectQueued(batch, new UnavailableError(`raft dropped the proposal: ${error.message}`, { cause: error }));
    }
  }

  #rejectQueued(batch: readonly QueuedProposal[], reason: Error): void {
    for (const { sequence } of batch) {
      const pending = this.#proposals.get(sequence);
      if (pending === undefined) continue;
      this.#proposals.delete(sequence);
      pending.disposeAbort();
      pending.reject(reason);
    }
  }

  async #process(): Promise<void> {
    try {
      while (this.#state === "running" && this.#rawNode.hasReady()) {
        const ready = this.#rawNode.ready();
        const persisting = this.#handleReady(ready);
        if (persisting !== null) await persisting;
        this.#rawNode.advance(ready);
      }
    } catch (error) {
      this.#fail(error instanceof Error ? error : new Error(errorMessage(error)));
    } finally {
      this.#processActive = false;
    }
    // Something may have stepped the core between the last hasReady() and now.
    if (this.#state === "running" && this.#rawNode.hasReady()) this.#schedule();
  }

  /**
   * Handles a Ready up to advance(): synchronously (null) when nothing in it waits for the
   * disk or the event loop, which is about half the Readies (a commit index alone needs
   * no fsync); otherwise the promise of the rest. Not one async function for both: each
   * call of one allocated its frame and promises, several times per proposal.
   */
  #handleReady(ready: Ready): Promise<void> | null {
    // A leader's appends replicate while its own fsync runs: one disk write of latency
    // instead of two. The core counts the leader's entries only after advance().
    const sendFirst = (ready.softState?.role ?? this.#role) === "leader";
    const messages = coalesceMessages(ready.messages);
    // A snapshot must be on disk before it replaces the state machine.
    const applyFirst = ready.snapshot === null;
    if (sendFirst) {
      this.#leaderSends.send(messages);
      if (applyFirst) this.#applyCommitted(ready);
    } else if (applyFirst) {
      this.#applyCommitted(ready);
    }
    // The HTTP/2 layer writes to the socket on the event loop's next turn; the WAL write
    // and fsync submission wait for it, so the followers' copies start first (measured:
    // the append reached a follower 0.05-0.1 ms sooner at one proposal at a time).
    const yieldFirst = sendFirst && messages.length > 0 && ready.entries.length > 0;
    // A leader's snapshot replaces the log and the snapshot files: the local one being
    // written must finish first (it shares the directory, and compacts the log).
    const snapshotWait = ready.snapshot === null ? null : this.#snapshotting;
    if (!yieldFirst && snapshotWait === null && this.#storage.saveBuffered(ready)) {
      this.#finishReady(ready, sendFirst ? null : messages, applyFirst);
      return null;
    }
    return this.#persistReady(ready, yieldFirst, snapshotWait, sendFirst ? null : messages, applyFirst);
  }

  async #persistReady(
    ready: Ready,
    yieldFirst: boolean,
    snapshotWait: Promise<void> | null,
    messagesAfter: readonly Message[] | null,
    applied: boolean,
  ): Promise<void> {
    if (yieldFirst) await setImmediatePromise();
    if (snapshotWait !== null) await snapshotWait;
    await this.#storage.save(ready);
    if (ready.snapshot === null) {
      this.#finishReady(ready, messagesAfter, applied);
      return;
    }
    // The snapshot is on disk, so its acknowledgement may leave now: the leader learns
    // of it while the state machine loads it, which can take many turns of the event loop.
    if (messagesAfter !== null && messagesAfter.length > 0) this.#transport.send(messagesAfter);
    const { metadata } = ready.snapshot;
    await this.#applySnapshot(metadata.index, ready.snapshot.data, metadata.confState, ready.softState?.leader ?? this.#leader);
    this.#finishReady(ready, null, applied);
  }

  /** The part of a Ready after its persistence: sends, applies, and role and term changes. */
  #finishReady(ready: Ready, messagesAfter: readonly Message[] | null, applied: boolean): void {
    if (messagesAfter !== null && messagesAfter.length > 0) this.#transport.send(messagesAfter);
    if (!applied) this.#applyCommitted(ready);
    if (ready.hardState !== null && ready.hardState.term !== this.#term) {
      // Leadership may have been lost and won back between two Readies, with no visible
      // role change: entries proposed in an older term may have been overwritten. Done
      // before the role change is published, so that a listener proposing at once is
      // tagged with the new term.
      this.#term = ready.hardState.term;
      this.#rejectLostProposals();
    }
    if (ready.softState !== null) this.#onSoftState(ready.softState.leader, ready.softState.role);
    // Entries applied early (committed on the followers' acknowledgements while this
    // node's fsync ran) may not be in the local log yet; a snapshot past the log's end
    // would be refused, so it waits for the Ready that persists them.
    const snapshotDue = this.#applied - this.#snapshotIndex >= this.#snapshotGap;
    if (snapshotDue && this.#snapshotting === null && this.#applied <= this.#storage.lastIndex()) this.#startSnapshot();
  }

  /** Applies a Ready's entries and read states; its snapshot, if any, was applied before (see #persistReady). */
  #applyCommitted(ready: Ready): void {
    for (const entry of ready.committedEntries) this.#applyEntry(entry);
    for (const state of ready.readStates) this.#reads.onReadState(state);
    this.#reads.onApplied(this.#applied);
  }

  /** `leader`, who sent the snapshot, stays a peer even when the snapshot does not list it. */
  async #applySnapshot(index: number, data: Uint8Array, confState: ConfState, leader: NodeId): Promise<void> {
    const envelope = decodeSnapshotEnvelope(data);
    await this.#stateMachine.restore(envelope.data);
    for (const [id, address] of envelope.members) this.#setMember(id, address);
    for (const id of [...this.#members.keys()]) {
      // A snapshot taken before the leader joined does not list it. Dropped, it could not
      // be answered: the leader would wait for an answer to the snapshot (or to a heartbeat)
      // before sending the entries that add it back, and lose its quorum. Those entries add
      // it, or remove it, for good.
      if (!envelope.members.has(id) && id !== leader) this.#removeMember(id);
    }
    this.#confState = confState;
    this.#applied = index;
    this.#snapshotIndex = index;
  }

  #applyEntry(entry: Entry): void {
    if (entry.index > this.#applied + 1) assert.fail(`applying ${entry.index} after ${this.#applied}`);
    if (entry.index <= this.#applied) return;
    this.#applied = entry.index;
    if (entry.type === "conf-change") {
      const change = decodeConfChange(entry.data);
      this.#confState = this.#rawNode.applyConfChange(change);
      if (change.type === "remove-node") this.#removeMember(change.nodeId);
      else this.#setMember(change.nodeId, Buffer.from(change.context).toString("utf8"));
      const key = confChangeKey(change);
      const position = this.#confChanges.findIndex((pending) => pending.key === key);
      const pending = position === -1 ? undefined : this.#confChanges.splice(position, 1)[0];
      pending?.disposeAbort();
      pending?.resolve(this.#confState);
      return;
    }
    // The no-op a new leader appends carries no data and means nothing to the state machine.
    if (entry.data.length === 0) return;
    const { id, data } = decodeEntryEnvelope(entry.data, entry.index);
    this.#stateMachine.apply({ index: entry.index, term: entry.term, data });
    if (id.nonce !== this.#nonce) return;
    const pending = this.#proposals.get(id.sequence);
    if (pending === undefined) return;
    this.#proposals.delete(id.sequence);
    pending.disposeAbort();
    pending.resolve({ index: entry.index, term: entry.term });
  }

  #setMember(id: NodeId, address: string): void {
    if (address.length === 0) return;
    this.#members.set(id, address);
    this.#transport.addPeer(id, address);
  }

  #removeMember(id: NodeId): void {
    this.#members.delete(id);
    this.#transport.removePeer(id);
  }

  #onSoftState(leader: NodeId, role: StateRole): void {
    const wasLeader = this.#role === "leader";
    const leaderChanged = leader !== this.#leader;
    this.#leader = leader;
    this.#role = role;
    const term = this.#rawNode.status().hardState.term;
    this.#logger.info({ leader, role, term }, "raft leadership changed");
    if (wasLeader && role !== "leader") this.#rejectLostProposals();
    if (leaderChanged) this.#reads.onLeaderChange();
    const change: LeaderChange = { nodeId: this.id, leader, term, role };
    if (leaderChangedChannel.hasSubscribers) leaderChangedChannel.publish(change);
    for (const listener of this.#leaderListeners) {
      // A listener's bug must not stop consensus: it is logged, and raft carries on.
      try {
        listener(change);
      } catch (error) {
        this.#logger.error({ error: errorMessage(error) }, "a leader-change listener threw");
      }
    }
  }

  #drawSnapshotGap(): number {
    return this.#snapshotEveryEntries + this.#random(this.#snapshotSpreadEntries + 1);
  }

  /**
   * Takes the state machine's snapshot now (it must match the applied index), then writes
   * the file and compacts the log in the background: the Readies that follow do not wait
   * for the snapshot's fsyncs (etcd's server also snapshots off its Ready loop). Crash
   * safety comes from the order inside: file durable, then the WAL marker, then compaction,
   * and #snapshotIndex only moves once the file is durable.
   */
  #startSnapshot(): void {
    this.#snapshotGap = this.#drawSnapshotGap();
    const index = this.#applied;
    const confState = this.#confState;
    // Both taken now, at the applied index; the bytes may come later (see StateMachine).
    const members = new Map(this.#members);
    const data = this.#stateMachine.snapshot();
    this.#snapshotting = this.#snapshotAndCompact(index, confState, members, data)
      .catch((error: unknown) => this.#fail(error instanceof Error ? error : new Error(errorMessage(error))))
      .finally(() => {
        this.#snapshotting = null;
      });
  }

  async #snapshotAndCompact(
    index: number,
    confState: ConfState,
    members: ReadonlyMap<NodeId, string>,
    data: SnapshotBytes | Promise<SnapshotBytes>,
  ): Promise<void> {
    // Awaited at once, so that bytes that fail are handled, not reported unhandled while
    // this waits for the next turn. The Ready that made the snapshot due is advanced
    // first; encoding the file (its checksum) then runs between Readies, not inside one.
    const bytes = await data;
    await setImmediatePromise();
    const envelope = await encodeSnapshotEnvelope({ members, data: bytes });
    await this.#storage.createSnapshot(index, confState, envelope);
    this.#snapshotIndex = index;
    const compactTo = index - this.#snapshotCatchUpEntries;
    if (compactTo >= this.#storage.firstIndex()) await this.#storage.compact(compactTo);
    this.#logger.debug({ index, compactTo }, "took a raft snapshot");
  }

  #fail(error: Error): void {
    if (this.#state === "failed" || this.#state === "closed") return;
    this.#state = "failed";
    this.#logger.fatal({ error: errorMessage(error) }, "raft node stopped on a fatal error");
    this.#stopActivity(new UnavailableError("the raft node stopped on a fatal error", { cause: error }));
    const onFatal = this.#options.onFatalError ?? ((fatal: Error) => setImmediate(() => { throw fatal; }));
    onFatal(error);
  }

  #stopActivity(reason: Error): void {
    this.#cancelTick?.();
    this.#cancelTick = null;
    this.#leaderSends.clear();
    this.#transport.setHandler(null);
    this.#rejectProposals(reason);
    this.#rejectConfChanges(reason, () => true);
    this.#reads.rejectAll(reason);
  }

  /** Rejects what was proposed in an earlier leadership (all of it, when no longer leader). */
  #rejectLostProposals(): void {
    const reason = new UnavailableError(
      "this manager lost raft leadership before the proposal was applied; it may or may not commit: check before retrying",
    );
    const stillLeader = this.#role === "leader";
    for (const [sequence, proposal] of this.#proposals) {
      if (stillLeader && proposal.term === this.#term) continue;
      this.#proposals.delete(sequence);
      proposal.disposeAbort();
      proposal.reject(reason);
    }
    // A change proposed in an earlier term may have been overwritten by another leader's
    // log: waiting for it to apply could wait for ever.
    this.#rejectConfChanges(reason, (pending) => !stillLeader || pending.term !== this.#term);
  }

  #rejectConfChanges(reason: Error, lost: (pending: PendingConfChange) => boolean): void {
    for (const pending of this.#confChanges.filter(lost)) {
      this.#confChanges.splice(this.#confChanges.indexOf(pending), 1);
      pending.disposeAbort();
      pending.reject(reason);
    }
  }

  #rejectProposals(reason: Error): void {
    const pending = [...this.#proposals.values()];
    this.#proposals.clear();
    this.#queuedProposals = [];
    for (const proposal of pending) {
      proposal.disposeAbort();
      proposal.reject(reason);
    }
  }

  #checkRunning(): void {
    if (this.#state !== "running") throw new UnavailableError(`raft node ${this.id} is ${this.#state}`);
  }

  /**
   * Leader in both views: the core steps down on a message at once, while the driver's
   * role follows only once that Ready is persisted. Between the two a proposal would be
   * forwarded by the core, and a conf change dropped by the leader it reaches would never
   * be answered.
   */
  #isLeader(): boolean {
    return this.#role === "leader" && this.#rawNode.isLeader();
  }

  #checkLeader(): void {
    if (this.#isLeader()) return;
    const leader = this.#rawNode.isLeader() ? this.#leader : this.#rawNode.status().softState.leader;
    throw new NotLeaderError(leader, this.#members.get(leader));
  }

  /**
   * Replicates `data` and resolves with its log position once it is applied on this node.
   * Rejects with NotLeaderError on a follower (also when leadership is lost before the
   * proposal entered the log: it was then never proposed), UnavailableError when raft drops
   * the proposal or leadership is lost later, CancelledError when the signal fires (the
   * entry may still apply).
   */
  propose(data: Uint8Array, options: { signal?: AbortSignal } = {}): Promise<{ index: number; term: number }> {
    try {
      throwIfAborted(options.signal);
      this.#checkRunning();
      if (data.length > proposalBytesMax) {
        throw new InvalidArgumentError(`proposal of ${data.length} bytes exceeds proposalBytesMax ${proposalBytesMax}`);
      }
      this.#checkLeader();
      if (this.#proposals.size >= pendingProposalsMax) {
        throw new UnavailableError(`${pendingProposalsMax} proposals are waiting to apply: retry later`);
      }
      this.#sequence += 1;
      const sequence = this.#sequence;
      const answer = new Promise<{ index: number; term: number }>((resolve, reject) => {
        const signal = options.signal;
        const listener =
          signal === undefined
            ? undefined
            : addAbortListener(signal, () => {
                this.#proposals.delete(sequence);
                reject(new CancelledError("proposal wait cancelled; the entry may still be applied", { cause: signal.reason }));
              });
        const disposeAbort = listener === undefined ? doNothing : () => listener[Symbol.dispose]();
        this.#proposals.set(sequence, { term: this.#term, resolve, reject, disposeAbort });
      });
      this.#queuedProposals.push({ sequence, data: encodeEntryEnvelope({ nonce: this.#nonce, sequence }, data) });
      this.#schedule();
      return answer;
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(errorMessage(error)));
    }
  }

  /**
   * A linearizable read point: resolves with an index once this node has applied at least
   * everything committed when the call was made, so reads of local state are up to date.
   * Works on followers (the leader confirms its leadership). Throws UnavailableError when
   * no leader answers in time.
   */
  async readIndex(options: { signal?: AbortSignal } = {}): Promise<number> {
    throwIfAborted(options.signal);
    this.#checkRunning();
    const { context, done } = this.#reads.add(options.signal);
    try {
      this.#rawNode.readIndex(context);
    } catch (error) {
      this.#reads.cancel(context);
      if (error instanceof ProposalDroppedError) throw new UnavailableError(`read refused: ${error.message}`, { cause: error });
      throw error;
    }
    this.#schedule();
    return done;
  }

  /**
   * Rejects at once (NotLeaderError) on a follower, as propose() does; otherwise the
   * promise settles when the change applies here, or is rejected when leadership is lost
   * first (the change may still apply under the next leader) or the signal fires.
   */
  #proposeConfChange(change: ConfChange, options: { signal?: AbortSignal }): Promise<ConfState> {
    const key = confChangeKey(change);
    try {
      throwIfAborted(options.signal);
      this.#checkRunning();
      this.#checkLeader();
      if (this.#confChanges.some((pending) => pending.key === key)) {
        throw new FailedPreconditionError(`the same membership change (${key}) is already in progress`);
      }
      if (this.#confChanges.length >= pendingConfChangesMax) {
        throw new FailedPreconditionError("another membership change is in progress: retry once it applies");
      }
      this.#rawNode.proposeConfChange(change);
    } catch (error) {
      if (error instanceof ProposalDroppedError) {
        return Promise.reject(new FailedPreconditionError(`membership change refused: ${error.message}`, { cause: error }));
      }
      return Promise.reject(error instanceof Error ? error : new Error(errorMessage(error)));
    }
    this.#schedule();
    return new Promise((resolve, reject) => {
      const signal = options.signal;
      const pending: PendingConfChange = {
        key,
        term: this.#term,
        resolve,
        reject,
        disposeAbort: () => listener?.[Symbol.dispose](),
      };
      const listener =
        signal === undefined
          ? undefined
          : addAbortListener(signal, () => {
              const position = this.#confChanges.indexOf(pending);
              if (position !== -1) this.#confChanges.splice(position, 1);
              reject(new CancelledError("membership change wait cancelled; the change may still be applied", { cause: signal.reason }));
            });
      this.#confChanges.push(pending);
    });
  }

  /** Adds a voting member; resolves with the new membership once applied here. */
  addMember(member: RaftMember, options: { signal?: AbortSignal } = {}): Promise<ConfState> {
    return this.#proposeConfChange({ type: "add-voter", nodeId: member.id, context: Buffer.from(member.address) }, options);
  }

  /**
   * Adds a non-voting member that receives the log; promote() it once it caught up. On a
   * member that is a voter already this is a demotion (etcd's rule); see demote().
   */
  addLearner(member: RaftMember, options: { signal?: AbortSignal } = {}): Promise<ConfState> {
    return this.#proposeConfChange({ type: "add-learner", nodeId: member.id, context: Buffer.from(member.address) }, options);
  }

  /** Turns a learner into a voter. */
  promote(id: NodeId, options: { signal?: AbortSignal } = {}): Promise<ConfState> {
    const address = this.#members.get(id);
    // On a follower NotLeaderError comes first: the leader may know the member.
    if (address === undefined && this.#isLeader()) return Promise.reject(new InvalidArgumentError(`member ${id} is unknown: add it as a learner first`));
    return this.#proposeConfChange({ type: "add-voter", nodeId: id, context: Buffer.from(address ?? "") }, options);
  }

  /**
   * Turns a voter into a learner (etcd's AddLearnerNode on a voter): it keeps receiving the
   * log but no longer votes or counts for quorum; promote() makes it a voter again. A
   * demoted leader steps down. Refused (FailedPreconditionError) for the last voter.
   */
  demote(id: NodeId, options: { signal?: AbortSignal } = {}): Promise<ConfState> {
    const address = this.#members.get(id);
    if (address === undefined && this.#isLeader()) return Promise.reject(new InvalidArgumentError(`member ${id} is unknown`));
    return this.#proposeConfChange({ type: "add-learner", nodeId: id, context: Buffer.from(address ?? "") }, options);
  }

  /** Removes a member for good (its id may never be reused). */
  removeMember(id: NodeId, options: { signal?: AbortSignal } = {}): Promise<ConfState> {
    return this.#proposeConfChange({ type: "remove-node", nodeId: id, context: new Uint8Array(0) }, options);
  }

  /** Asks the leader (this node) to hand leadership to `to`; watch onLeaderChange for the result. */
  transferLeadership(to: NodeId): void {
    this.#checkRunning();
    this.#checkLeader();
    this.#rawNode.transferLeader(to);
    this.#schedule();
  }

  /** Calls `listener` on every leader or role change; returns the function that unsubscribes. */
  onLeaderChange(listener: (change: LeaderChange) => void): () => void {
    this.#leaderListeners.add(listener);
    return () => this.#leaderListeners.delete(listener);
  }

  /** A consistent view of this node's raft state, for diagnostics and routing. */
  status(): RaftNodeStatus {
    const status = this.#rawNode.status();
    return {
      id: this.id,
      leader: this.#leader,
      role: this.#role,
      term: status.hardState.term,
      commit: status.hardState.commit,
      applied: this.#applied,
      snapshotIndex: this.#snapshotIndex,
      members: new Map(this.#members),
      walSyncs: this.#storage.walSyncCount(),
    };
  }

  /**
   * Stops ticking and receiving, waits for the Ready being handled (so its fsync
   * completes), rejects everything pending, and closes the transport and the WAL.
   */
  async close(): Promise<void> {
    if (this.#state === "closed" || this.#state === "closing") return;
    const failed = this.#state === "failed";
    this.#state = "closing";
    if (!failed) this.#stopActivity(new UnavailableError(`raft node ${this.id} is closing`));
    await this.#processing;
    // Its failure, if any, went to #fail already.
    await this.#snapshotting;
    try {
      if (!failed) await this.#storage.flush();
    } finally {
      await this.#transport.close();
      await this.#storage.close();
      this.#state = "closed";
    }
  }
}
