import { CompactedError, SnapshotTemporarilyUnavailableError, type LogStorage } from "../storage/log-storage.js";
import { decodeConfChange } from "./conf-change.js";
import { payloadSizeBytes } from "./entry-size.js";
import { invariant, invariantFailed } from "./invariant.js";
import { RaftLog } from "./log.js";
import { isResponseMessageType, messageFrom, newMessage, voteResponseType } from "./message.js";
import { Progress, ProgressTracker } from "./progress.js";
import { majorityVoteResult } from "./quorum.js";
import { ReadOnly, pendingReadIndexRequestsMax } from "./read-only.js";
import {
  noneId,
  type ConfChange,
  type ConfState,
  type Entry,
  type HardState,
  type Message,
  type NodeId,
  type ReadState,
  type Snapshot,
  type SoftState,
  type StateRole,
} from "./types.js";

/** The subset of a pino logger the core uses. */
export interface RaftLogger {
  debug(object: Record<string, unknown>, message: string): void;
  info(object: Record<string, unknown>, message: string): void;
  warn(object: Record<string, unknown>, message: string): void;
}

export interface RaftConfig {
  readonly id: NodeId;
  readonly storage: LogStorage;
  /** Ticks without hearing from a leader before a follower campaigns (randomized up to 2x). */
  readonly electionTicks: number;
  /** Ticks between a leader's heartbeats; must be smaller than electionTicks. */
  readonly heartbeatTicks: number;
  /** An integer in [0, bound): injected so that tests are deterministic. */
  readonly random: (bound: number) => number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  /** Upper bound on the entry bytes in one append message (one entry always fits). */
  readonly maxSizePerMsgBytes: number;
  /** Append messages in flight to one follower before the leader waits for answers. */
  readonly maxInflightMsgs: number;
  /** Payload bytes a leader accepts beyond its commit index before it drops proposals. */
  readonly maxUncommittedEntriesBytes?: number;
  /** Upper bound on the committed-entry bytes one Ready hands out. */
  readonly maxCommittedSizePerReadyBytes?: number;
  /** The last index the state machine applied before this restart. */
  readonly applied: number;
  readonly logger?: RaftLogger;
}

/** Suggested settings (etcd's): the driver fills RaftConfig from these unless configured. */
export const electionTicksDefault = 10;
export const heartbeatTicksDefault = 1;
export const maxSizePerMsgBytesDefault = 1024 * 1024;
export const maxInflightMsgsDefault = 256;

/** Committed-entry bytes per Ready when the config does not say. */
export const committedSizePerReadyBytesDefault = 64 * 1024 * 1024;

/** Thrown to the local proposer when raft cannot take a proposal now; retrying later may work. */
export class ProposalDroppedError extends Error {
  override readonly name = "ProposalDroppedError";
}

/** Marks the vote requests of a leadership transfer: they override the leader lease. */
const campaignTransferContext = new TextEncoder().encode("transfer");

type CampaignKind = "pre-election" | "election" | "transfer";
type StepFunction = (raft: Raft, message: Message) => void;

const silentLogger: RaftLogger = { debug: () => undefined, info: () => undefined, warn: () => undefined };

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, index) => byte === b[index]);
}

function validateConfig(config: RaftConfig): void {
  invariant(Number.isSafeInteger(config.id) && config.id > 0, "id must be a positive integer");
  invariant(config.heartbeatTicks > 0, "heartbeatTicks must be positive");
  invariant(config.electionTicks > config.heartbeatTicks, "electionTicks must exceed heartbeatTicks");
  invariant(config.maxInflightMsgs > 0, "maxInflightMsgs must be positive");
  invariant(config.maxSizePerMsgBytes > 0, "maxSizePerMsgBytes must be positive");
  invariant(config.applied >= 0, "applied must not be negative");
}

/**
 * The Raft state machine (after etcd raft.go). It only mutates state and appends to
 * `messages`; RawNode turns that into Ready batches. Roles swap `#stepRole`/`#tickRole`.
 */
export class Raft {
  readonly id: NodeId;
  term = 0;
  vote: NodeId = noneId;
  lead: NodeId = noneId;
  state: StateRole = "follower";
  readonly log: RaftLog;
  tracker: ProgressTracker;
  removed = new Set<NodeId>();
  messages: Message[] = [];
  readStates: ReadState[] = [];
  leadTransferee: NodeId = noneId;
  /** Index of the latest conf-change entry a leader proposed; one at a time. */
  pendingConfIndex = 0;
  uncommittedSize = 0;
  readOnly = new ReadOnly();
  pendingReadIndexMessages: Message[] = [];
  electionElapsed = 0;
  heartbeatElapsed = 0;
  randomizedElectionTimeout = 0;
  readonly electionTimeout: number;
  readonly heartbeatTimeout: number;
  readonly checkQuorum: boolean;
  readonly preVote: boolean;
  readonly maxMsgSize: number;
  readonly maxUncommittedSize: number;
  readonly maxCommittedSizePerReady: number;
  readonly logger: RaftLogger;
  readonly #random: (bound: number) => number;
  #stepRole: StepFunction = stepFollower;
  #tickRole: () => void = () => this.#tickElection();

  constructor(config: RaftConfig) {
    validateConfig(config);
    this.id = config.id;
    this.electionTimeout = config.electionTicks;
    this.heartbeatTimeout = config.heartbeatTicks;
    this.checkQuorum = config.checkQuorum;
    this.preVote = config.preVote;
    this.maxMsgSize = config.maxSizePerMsgBytes;
    this.maxUncommittedSize = config.maxUncommittedEntriesBytes ?? Infinity;
    this.maxCommittedSizePerReady = config.maxCommittedSizePerReadyBytes ?? committedSizePerReadyBytesDefault;
    this.logger = config.logger ?? silentLogger;
    this.#random = config.random;
    this.log = new RaftLog(config.storage);
    this.tracker = new ProgressTracker(config.maxInflightMsgs);
    const { hardState, confState } = config.storage.initialState();
    this.#restoreConfState(confState);
    if (hardState.term !== 0 || hardState.vote !== noneId || hardState.commit !== 0) this.#loadHardState(hardState);
    this.#raiseTermToLastLogTerm();
    if (config.applied > 0) this.log.appliedTo(config.applied);
    this.becomeFollower(this.term, noneId);
    this.logger.info(
      { term: this.term, commit: this.log.committed, applied: this.log.applied, lastIndex: this.log.lastIndex() },
      "raft node started",
    );
  }

  #loadHardState(state: HardState): void {
    invariant(
      state.commit <= this.log.lastIndex(),
      `hard state commit ${state.commit} is beyond the last index ${this.log.lastIndex()}`,
    );
    // A crash may persist a snapshot but tear off the hard state written after it. The
    // snapshot is committed by definition, so its index is a floor for the commit index.
    this.log.committed = Math.max(state.commit, this.log.committed);
    this.term = state.term;
    this.vote = state.vote;
  }

  /**
   * A node stores an entry or a snapshot of term T only after adopting T, so its term is
   * never below its last log term, except after a torn write that kept the entries or the
   * snapshot (written before the hard state) and lost the hard state of a fresh joiner.
   * Restoring the floor here keeps that invariant true everywhere else, where the election
   * rules rely on it: a candidate's term exceeds every term in its log (no entry of a lower
   * term is ever appended after a higher one), and a node at term 0 has an empty log, so it
   * grants every pre-vote and never has to answer one with term 0 (etcd and raft-rs make
   * the same assumption: raft-rs #511, "an initialised group should not have term 0").
   * Answering a rejected pre-vote with the request's term instead would move the
   * candidate's real term forward, which pre-vote exists to prevent. Clearing the vote
   * forgets nothing: a vote is durable before it is sent, so a node whose durable term is
   * below T never voted in T or later.
   */
  #raiseTermToLastLogTerm(): void {
    const lastTerm = this.log.lastTerm();
    if (this.term >= lastTerm) return;
    this.logger.warn({ term: this.term, lastTerm }, "raising the term to the last log term: the hard state was older than the log");
    this.term = lastTerm;
    this.vote = noneId;
  }

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  softState(): SoftState {
    return { leader: this.lead, role: this.state };
  }

  confState(): ConfState {
    return { ...this.tracker.confState(), removed: [...this.removed].sort((a, b) => a - b) };
  }

  /** Not a learner, a member, and not waiting to persist a snapshot. */
  promotable(): boolean {
    return this.tracker.isVoter(this.id) && !this.log.hasPendingSnapshot();
  }

  // ---- sending -------------------------------------------------------------------------

  /** Queues a message from this node, with every field the caller left out at its zero value. */
  send(fields: Partial<Message> & Pick<Message, "type" | "to">): void {
    const type = fields.type;
    let term = fields.term ?? 0;
    if (type === "vote" || type === "vote-resp" || type === "pre-vote" || type === "pre-vote-resp") {
      // These carry the term of the election they are about, which may differ from ours.
      if (term === 0) invariantFailed(`${type} must carry a term`);
    } else if (type !== "prop" && type !== "read-index") {
      // Forwarded proposals and reads travel without a term, like local messages.
      if (term !== 0) invariantFailed(`${type} must not set its own term`);
      term = this.term;
    }
    this.messages.push(messageFrom(this.id, term, fields));
  }

  /** Sends an append (or a snapshot) to `to` if it is not paused; returns whether it sent. */
  maybeSendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const progress = this.tracker.progress.get(to);
    if (progress === undefined || progress.isPaused()) return false;
    const previousTerm = this.log.termOrNull(progress.next - 1);
    let entries: Entry[] | null = null;
    if (previousTerm !== null) {
      try {
        entries = this.log.entriesFrom(progress.next, this.maxMsgSize);
      } catch (error) {
        if (!(error instanceof CompactedError)) throw error;
      }
    }
    if (previousTerm === null || entries === null) return this.#maybeSendSnapshot(to, progress);
    if (entries.length === 0 && !sendIfEmpty) return false;
    const previousIndex = progress.next - 1;
    const last = entries.at(-1);
    if (last !== undefined) {
      if (progress.state === "replicate") {
        progress.optimisticUpdate(last.index);
        progress.inflights.add(last.index);
      } else if (progress.state === "probe") {
        progress.probeSent = true;
      }
    }
    this.send({ type: "app", to, index: previousIndex, logTerm: previousTerm, entries, commit: this.log.committed });
    return true;
  }

  #maybeSendSnapshot(to: NodeId, progress: Progress): boolean {
    // A follower that has not answered lately may be down; a snapshot is expensive.
    if (!progress.recentActive) return false;
    let snapshot: Snapshot;
    try {
      snapshot = this.log.snapshot();
    } catch (error) {
      if (error instanceof SnapshotTemporarilyUnavailableError) return false;
      throw error;
    }
    invariant(snapshot.metadata.index > 0, "a follower needs a snapshot but storage has none");
    this.logger.info({ to, snapshotIndex: snapshot.metadata.index, match: progress.match }, "sending snapshot");
    progress.becomeSnapshot(snapshot.metadata.index);
    this.send({ type: "snap", to, snapshot });
    return true;
  }

  sendAppend(to: NodeId): void {
    this.maybeSendAppend(to, true);
  }

  bcastAppend(): void {
    for (const id of this.tracker.ids()) if (id !== this.id) this.sendAppend(id);
  }

  sendHeartbeat(to: NodeId, context: Uint8Array | null): void {
    // Never tell a follower to commit past what it is known to hold.
    const commit = Math.min(this.tracker.progress.get(to)?.match ?? 0, this.log.committed);
    this.send({ type: "heartbeat", to, commit, ...(context === null ? {} : { context }) });
  }

  bcastHeartbeat(context: Uint8Array | null = this.readOnly.lastPendingContext()): void {
    for (const id of this.tracker.ids()) if (id !== this.id) this.sendHeartbeat(id, context);
  }

  sendTimeoutNow(to: NodeId): void {
    this.send({ type: "timeout-now", to });
  }

  // ---- role changes --------------------------------------------------------------------

  #reset(term: number): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = noneId;
    }
    this.lead = noneId;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.randomizedElectionTimeout = this.electionTimeout + this.#random(this.electionTimeout);
    invariant(
      this.randomizedElectionTimeout >= this.electionTimeout && this.randomizedElectionTimeout < 2 * this.electionTimeout,
      "random(bound) must return an integer in [0, bound)",
    );
    this.leadTransferee = noneId;
    this.tracker.resetVotes();
    const lastIndex = this.log.lastIndex();
    for (const [id, old] of this.tracker.progress) {
      const progress = new Progress({ next: lastIndex + 1, inflightsMax: this.tracker.inflightsMax, isLearner: old.isLearner });
      if (id === this.id) progress.match = this.log.lastStableIndex();
      this.tracker.progress.set(id, progress);
    }
    this.pendingConfIndex = 0;
    this.uncommittedSize = 0;
    this.readOnly = new ReadOnly();
    this.pendingReadIndexMessages = [];
  }

  becomeFollower(term: number, lead: NodeId): void {
    this.#stepRole = stepFollower;
    this.#reset(term);
    this.#tickRole = () => this.#tickElection();
    this.lead = lead;
    this.state = "follower";
    this.logger.debug({ term, lead }, "became follower");
  }

  becomePreCandidate(): void {
    invariant(this.state !== "leader", "a leader cannot become pre-candidate");
    // Pre-vote changes neither term nor vote: a partitioned node cannot disrupt anyone.
    this.#stepRole = stepCandidate;
    this.tracker.resetVotes();
    this.#tickRole = () => this.#tickElection();
    this.lead = noneId;
    this.state = "pre-candidate";
    this.logger.debug({ term: this.term }, "became pre-candidate");
  }

  becomeCandidate(): void {
    invariant(this.state !== "leader", "a leader cannot become candidate");
    this.#stepRole = stepCandidate;
    this.#reset(this.term + 1);
    this.#tickRole = () => this.#tickElection();
    this.vote = this.id;
    this.state = "candidate";
    this.logger.debug({ term: this.term }, "became candidate");
  }

  becomeLeader(): void {
    invariant(this.state !== "follower", "a follower cannot become leader directly");
    this.#stepRole = stepLeader;
    this.#reset(this.term);
    this.#tickRole = () => this.#tickHeartbeat();
    this.lead = this.id;
    this.state = "leader";
    const self = this.tracker.progress.get(this.id);
    invariant(self !== undefined, "a leader must be in its own configuration");
    self.becomeReplicate();
    self.recentActive = true;
    // Conf changes wait until everything in the log before our term is applied.
    this.pendingConfIndex = this.log.lastIndex();
    // The no-op commits the entries of earlier terms (§5.4.2) and proves our leadership.
    invariant(this.appendEntries([{ term: 0, index: 0, type: "normal", data: new Uint8Array(0) }]), "no-op dropped");
    this.logger.info({ term: this.term, lastIndex: this.log.lastIndex() }, "became leader");
  }

  // ---- ticks ---------------------------------------------------------------------------

  tick(): void {
    this.#tickRole();
  }

  pastElectionTimeout(): boolean {
    return this.electionElapsed >= this.randomizedElectionTimeout;
  }

  #tickElection(): void {
    this.electionElapsed += 1;
    if (this.promotable() && this.pastElectionTimeout()) {
      this.electionElapsed = 0;
      this.step(newMessage({ type: "hup", from: this.id, to: this.id }));
    }
  }

  #tickHeartbeat(): void {
    this.heartbeatElapsed += 1;
    this.electionElapsed += 1;
    if (this.electionElapsed >= this.electionTimeout) {
      this.electionElapsed = 0;
      if (this.checkQuorum) this.step(newMessage({ type: "check-quorum", from: this.id, to: this.id }));
      // A transfer that did not finish within an election timeout has failed.
      if (this.state === "leader" && this.leadTransferee !== noneId) this.abortLeaderTransfer();
    }
    if (this.state !== "leader") return;
    if (this.heartbeatElapsed >= this.heartbeatTimeout) {
      this.heartbeatElapsed = 0;
      this.step(newMessage({ type: "beat", from: this.id, to: this.id }));
    }
  }

  // ---- elections -----------------------------------------------------------------------

  hup(kind: CampaignKind): void {
    if (this.state === "leader") return;
    if (!this.promotable()) {
      this.logger.debug({ term: this.term }, "not campaigning: not a voter or a snapshot is pending");
      return;
    }
    const refusal = this.#unappliedConfChangeRefusal();
    if (refusal !== null) {
      this.logger.debug({ term: this.term }, `not campaigning: ${refusal}`);
      return;
    }
    this.campaign(kind);
  }

  /**
   * Configurations take effect when applied, so a candidate counts votes in its applied
   * configuration, and that is safe only while it is at most one change behind the real
   * one. Two guards keep it so: no committed conf change may be unapplied, and the log may
   * hold at most one conf change beyond what is applied. The second always holds when a
   * Ready's entries and hard state persist together (a leader proposes a change only after
   * applying the previous one, and the append carrying it also carries that commit), but a
   * crash that persisted the entries and tore off the hard state breaks it; this node must
   * then wait to learn the commit index from a leader.
   */
  #unappliedConfChangeRefusal(): string | null {
    const from = Math.max(this.log.applied + 1, this.log.firstIndex());
    const last = this.log.lastIndex();
    if (from > last) return null;
    let unapplied = 0;
    for (const entry of this.log.slice(from, last + 1, Infinity)) {
      if (entry.type !== "conf-change") continue;
      if (entry.index <= this.log.committed) return `the committed conf change at ${entry.index} is not applied yet`;
      unapplied += 1;
      if (unapplied > 1) return "the log holds more than one conf change beyond the applied index";
    }
    return null;
  }

  campaign(kind: CampaignKind): void {
    let term: number;
    let type: "vote" | "pre-vote";
    if (kind === "pre-election") {
      this.becomePreCandidate();
      type = "pre-vote";
      // Pre-vote asks about the term we would use, without moving to it.
      term = this.term + 1;
    } else {
      this.becomeCandidate();
      type = "vote";
      term = this.term;
    }
    if (this.poll(this.id, true) === "won") {
      if (kind === "pre-election") this.campaign("election");
      else this.becomeLeader();
      return;
    }
    const context = kind === "transfer" ? { context: campaignTransferContext } : {};
    for (const id of this.tracker.voters.toSorted((a, b) => a - b)) {
      if (id === this.id) continue;
      this.send({ type, to: id, term, index: this.log.lastIndex(), logTerm: this.log.lastTerm(), ...context });
    }
  }

  poll(id: NodeId, granted: boolean): "pending" | "won" | "lost" {
    this.tracker.recordVote(id, granted);
    return this.tracker.tallyVotes().result;
  }

  // ---- step ----------------------------------------------------------------------------

  step(message: Message): void {
    if (message.from !== noneId && this.removed.has(message.from)) {
      this.logger.debug({ from: message.from, type: message.type }, "dropped a message from a removed member");
      return;
    }
    if (message.term > this.term && !this.#stepHigherTerm(message)) return;
    if (message.term !== 0 && message.term < this.term) {
      this.#stepLowerTerm(message);
      return;
    }
    switch (message.type) {
      case "hup":
        this.hup(this.preVote ? "pre-election" : "election");
        return;
      case "vote":
      case "pre-vote":
        this.#stepVoteRequest(message, message.type);
        return;
      default:
        this.#stepRole(this, message);
    }
  }

  /** Returns false when the message must be ignored. */
  #stepHigherTerm(message: Message): boolean {
    if (message.type === "vote" || message.type === "pre-vote") {
      const force = bytesEqual(message.context, campaignTransferContext);
      // The leader lease: we heard from a live leader within the minimum election timeout.
      const inLease = this.checkQuorum && this.lead !== noneId && this.electionElapsed < this.electionTimeout;
      if (!force && inLease) {
        this.logger.debug({ from: message.from, term: message.term, lead: this.lead }, "ignored a vote request: leader lease");
        return false;
      }
    }
    if (message.type === "pre-vote") return true;
    // A granted pre-vote carries the future term we asked about; only a rejection, which
    // carries the rejecter's real term, moves us forward.
    if (message.type === "pre-vote-resp" && !message.reject) return true;
    const fromLeader = message.type === "app" || message.type === "heartbeat" || message.type === "snap";
    this.logger.debug({ from: message.from, term: message.term, type: message.type }, "saw a higher term");
    this.becomeFollower(message.term, fromLeader ? message.from : noneId);
    return true;
  }

  #stepLowerTerm(message: Message): void {
    if (message.type === "heartbeat" || message.type === "app") {
      // Tell a stale leader our term. Unlike etcd we answer even without pre-vote or
      // check-quorum: a node that cannot campaign (a learner, or one that applied an old
      // configuration) and got a higher term from a removed member would otherwise ignore
      // the leader forever (simulator seed 42069).
      this.send({ type: "app-resp", to: message.from });
    } else if (message.type === "pre-vote") {
      this.send({ type: "pre-vote-resp", to: message.from, term: this.term, reject: true });
    }
  }

  #stepVoteRequest(message: Message, type: "vote" | "pre-vote"): void {
    const canVote =
      this.vote === message.from ||
      (this.vote === noneId && this.lead === noneId) ||
      (type === "pre-vote" && message.term > this.term);
    const responseType = voteResponseType(type);
    if (canVote && this.log.isUpToDate(message.index, message.logTerm)) {
      // A vote answers with the request's term (a pre-vote's term is in our future).
      this.send({ type: responseType, to: message.from, term: message.term });
      if (type === "vote") {
        this.electionElapsed = 0;
        this.vote = message.from;
      }
    } else {
      this.send({ type: responseType, to: message.from, term: this.term, reject: true });
    }
  }

  // ---- log handling --------------------------------------------------------------------

  /** Assigns term and index and appends; false when the uncommitted-size limit drops it. */
  appendEntries(entries: readonly Entry[]): boolean {
    const lastIndex = this.log.lastIndex();
    const stamped = entries.map((entry, offset) => ({ ...entry, term: this.term, index: lastIndex + 1 + offset }));
    const size = payloadSizeBytes(stamped);
    if (this.uncommittedSize > 0 && size > 0 && this.uncommittedSize + size > this.maxUncommittedSize) return false;
    this.uncommittedSize += size;
    this.log.append(stamped);
    return true;
  }

  /**
   * The leader's own entries join the quorum only once they are on its disk. The driver
   * sends a leader's appends while its own fsync runs (Raft thesis §10.2.1); counting them
   * at append time instead could commit an entry that only a minority of disks holds, and
   * a follower could apply it before a crash erases it from the leader.
   */
  localAppendStable(index: number, term: number): void {
    if (this.state !== "leader" || !this.log.matchTerm(index, term)) return;
    if (this.tracker.progress.get(this.id)?.maybeUpdate(index) !== true) return;
    if (this.maybeCommit()) {
      this.releasePendingReadIndexMessages();
      this.bcastAppend();
    }
  }

  reduceUncommittedSize(entries: readonly Entry[]): void {
    this.uncommittedSize = Math.max(0, this.uncommittedSize - payloadSizeBytes(entries));
  }

  maybeCommit(): boolean {
    return this.log.maybeCommit(this.tracker.committed(), this.term);
  }

  committedEntryInCurrentTerm(): boolean {
    return this.log.termOrNull(this.log.committed) === this.term;
  }

  handleAppendEntries(message: Message): void {
    if (message.index < this.log.committed) {
      this.send({ type: "app-resp", to: message.from, index: this.log.committed });
      return;
    }
    const lastNewIndex = this.log.maybeAppend(message.index, message.logTerm, message.commit, message.entries);
    if (lastNewIndex !== null) {
      this.send({ type: "app-resp", to: message.from, index: lastNewIndex });
      return;
    }
    // Hint the largest index whose term is <= the leader's term at message.index, so the
    // leader can skip a whole term of mismatching entries per round trip.
    const hintIndex = this.log.findConflictByTerm(Math.min(message.index, this.log.lastIndex()), message.logTerm);
    const hintTerm = this.log.termOrNull(hintIndex) ?? 0;
    this.logger.debug(
      { from: message.from, index: message.index, logTerm: message.logTerm, hintIndex, hintTerm },
      "rejected an append",
    );
    this.send({ type: "app-resp", to: message.from, index: message.index, reject: true, rejectHint: hintIndex, logTerm: hintTerm });
  }

  handleHeartbeat(message: Message): void {
    this.log.commitTo(message.commit);
    this.send({ type: "heartbeat-resp", to: message.from, context: message.context });
  }

  handleSnapshot(message: Message): void {
    const snapshot = message.snapshot;
    invariant(snapshot !== null, "a snap message must carry a snapshot");
    if (this.restore(snapshot)) {
      this.logger.info({ from: message.from, index: snapshot.metadata.index }, "restored from snapshot");
      this.send({ type: "app-resp", to: message.from, index: this.log.lastIndex() });
    } else {
      this.send({ type: "app-resp", to: message.from, index: this.log.committed });
    }
  }

  /** Installs `snapshot` unless it is stale or we already hold its entries. */
  restore(snapshot: Snapshot): boolean {
    const { index, term, confState } = snapshot.metadata;
    if (index <= this.log.committed) return false;
    if (this.state !== "follower") {
      // Only a leader of our term sends snapshots, and that makes us its follower first.
      this.logger.warn({ term: this.term, state: this.state }, "refused a snapshot while not a follower");
      this.becomeFollower(this.term + 1, noneId);
      return false;
    }
    if (confState.removed?.includes(this.id) === true) {
      this.logger.warn({ index }, "refused a snapshot whose configuration removed us");
      return false;
    }
    // A snapshot taken before our addition applied does not list us yet; installing it is
    // still safe (it is committed state) and the log after it adds us.
    if (![...confState.voters, ...confState.learners].includes(this.id)) {
      this.logger.info({ index, voters: confState.voters }, "installing a snapshot that predates our membership");
    }
    if (this.log.matchTerm(index, term)) {
      // We hold the snapshot's entries already: just fast-forward the commit index.
      this.log.commitTo(index);
      return false;
    }
    this.log.restore(snapshot);
    this.#restoreConfState(confState);
    return true;
  }

  #restoreConfState(confState: ConfState): void {
    this.tracker = new ProgressTracker(this.tracker.inflightsMax);
    this.removed = new Set(confState.removed ?? []);
    const next = this.log.lastIndex() + 1;
    for (const id of confState.voters) this.#addProgress(id, false, next);
    for (const id of confState.learners) this.#addProgress(id, true, next);
    const self = this.tracker.progress.get(this.id);
    if (self !== undefined) self.match = this.log.lastStableIndex();
  }

  #addProgress(id: NodeId, isLearner: boolean, next: number): void {
    invariant(!this.tracker.progress.has(id), `member ${id} listed twice`);
    const progress = new Progress({ next, inflightsMax: this.tracker.inflightsMax, isLearner });
    // A new member may need a snapshot at once; do not wait for it to answer first.
    progress.recentActive = true;
    this.tracker.progress.set(id, progress);
    if (isLearner) this.tracker.learners.push(id);
    else this.tracker.voters.push(id);
  }

  // ---- membership ----------------------------------------------------------------------

  /** Whether a leader may propose `change` now; the reason when it may not. */
  confChangeRefusal(change: ConfChange): string | null {
    if (this.pendingConfIndex > this.log.applied) {
      return `a conf change at index ${this.pendingConfIndex} is not applied yet (applied ${this.log.applied})`;
    }
    if (!this.committedEntryInCurrentTerm()) return "the leader has not committed an entry of its term yet";
    if (this.removed.has(change.nodeId)) return `node ${change.nodeId} was removed and its id cannot be reused`;
    if (change.type !== "add-voter" && this.tracker.voters.length === 1 && this.tracker.isVoter(change.nodeId)) {
      return `node ${change.nodeId} is the last voter`;
    }
    return null;
  }

  /**
   * Applies a committed conf change; every member applies the same sequence, so all
   * derive the same configuration. Changes that cannot apply are no-ops on every member.
   */
  applyConfChange(change: ConfChange): ConfState {
    const { type, nodeId } = change;
    if (this.removed.has(nodeId)) {
      this.logger.warn({ nodeId, type }, "ignored a conf change for a removed id");
    } else if (type === "add-voter") {
      const progress = this.tracker.progress.get(nodeId);
      if (progress === undefined) this.#addProgress(nodeId, false, this.log.lastIndex() + 1);
      else if (progress.isLearner) this.#promoteLearner(nodeId, progress);
    } else if (this.tracker.voters.length === 1 && this.tracker.isVoter(nodeId)) {
      this.logger.warn({ nodeId, type }, "ignored the removal or demotion of the last voter");
    } else if (type === "add-learner") {
      const progress = this.tracker.progress.get(nodeId);
      if (progress === undefined) this.#addProgress(nodeId, true, this.log.lastIndex() + 1);
      else if (!progress.isLearner) this.#demoteVoter(nodeId, progress);
    } else {
      this.#removeMember(nodeId);
    }
    this.logger.info({ type, nodeId, voters: this.tracker.voters, learners: this.tracker.learners }, "applied conf change");
    this.#afterConfChange();
    return this.confState();
  }

  #promoteLearner(nodeId: NodeId, progress: Progress): void {
    progress.isLearner = false;
    this.tracker.learners = this.tracker.learners.filter((id) => id !== nodeId);
    this.tracker.voters.push(nodeId);
  }

  /**
   * etcd's ConfChangeAddLearnerNode on a voter: it keeps its progress and its copy of the
   * log, but stops voting and counting for quorum. The voter set changes by one member, as
   * with a removal, so one such change at a time is safe without joint consensus.
   */
  #demoteVoter(nodeId: NodeId, progress: Progress): void {
    progress.isLearner = true;
    this.tracker.voters = this.tracker.voters.filter((id) => id !== nodeId);
    this.tracker.learners.push(nodeId);
    this.tracker.votes.delete(nodeId);
  }

  #removeMember(nodeId: NodeId): void {
    this.tracker.progress.delete(nodeId);
    this.tracker.voters = this.tracker.voters.filter((id) => id !== nodeId);
    this.tracker.learners = this.tracker.learners.filter((id) => id !== nodeId);
    this.tracker.votes.delete(nodeId);
    this.removed.add(nodeId);
  }

  #afterConfChange(): void {
    if ((this.state === "candidate" || this.state === "pre-candidate") && !this.tracker.isVoter(this.id)) {
      // A campaign that started before this node was demoted must not win: a leader that
      // is not a voter would never count itself.
      this.logger.info({ term: this.term }, "abandoning the campaign: this node is no longer a voter");
      this.becomeFollower(this.term, noneId);
      return;
    }
    if (this.state !== "leader") return;
    if (!this.tracker.isVoter(this.id)) {
      this.logger.info({ term: this.term }, "stepping down: this leader is no longer a voter");
      this.becomeFollower(this.term, noneId);
      return;
    }
    if (this.leadTransferee !== noneId && !this.tracker.isVoter(this.leadTransferee)) this.abortLeaderTransfer();
    // A smaller quorum may commit more now.
    if (this.maybeCommit()) {
      this.releasePendingReadIndexMessages();
      this.bcastAppend();
    } else for (const id of this.tracker.ids()) if (id !== this.id) this.maybeSendAppend(id, false);
  }

  abortLeaderTransfer(): void {
    this.leadTransferee = noneId;
  }

  // ---- reads ---------------------------------------------------------------------------

  /** Answers a ReadIndex request that is confirmed as of `index`. */
  respondToReadIndex(request: Message, index: number): void {
    if (request.from === noneId || request.from === this.id) {
      this.readStates.push({ index, requestContext: request.context });
      return;
    }
    this.send({ type: "read-index-resp", to: request.from, index, context: request.context });
  }

  sendReadIndexConfirmation(request: Message): void {
    const heartbeatContext = this.readOnly.addRequest(this.log.committed, request);
    this.readOnly.receiveAck(this.id, heartbeatContext);
    this.bcastHeartbeat(heartbeatContext);
  }

  releasePendingReadIndexMessages(): void {
    if (!this.committedEntryInCurrentTerm()) return;
    const pending = this.pendingReadIndexMessages;
    this.pendingReadIndexMessages = [];
    for (const request of pending) this.sendReadIndexConfirmation(request);
  }

  dropProposal(message: Message, reason: string): void {
    if (message.from === this.id || message.from === noneId) throw new ProposalDroppedError(reason);
    this.logger.debug({ from: message.from, reason }, "dropped a forwarded proposal");
  }

  isKnownPeerResponse(message: Message): boolean {
    return !isResponseMessageType(message.type) || this.tracker.progress.has(message.from);
  }
}

// ---- role step functions (etcd stepLeader / stepCandidate / stepFollower) ----------------

function stepLeader(raft: Raft, message: Message): void {
  switch (message.type) {
    case "beat":
      raft.bcastHeartbeat();
      return;
    case "check-quorum":
      stepLeaderCheckQuorum(raft);
      return;
    case "prop":
      stepLeaderPropose(raft, message);
      return;
    case "read-index":
      stepLeaderReadIndex(raft, message);
      return;
    default:
      break;
  }
  const progress = raft.tracker.progress.get(message.from);
  if (progress === undefined) {
    raft.logger.debug({ from: message.from, type: message.type }, "dropped a message from an unknown member");
    return;
  }
  switch (message.type) {
    case "app-resp":
      progress.recentActive = true;
      if (message.reject) stepLeaderAppendRejected(raft, message, progress);
      else stepLeaderAppendAccepted(raft, message, progress);
      return;
    case "heartbeat-resp":
      stepLeaderHeartbeatResponse(raft, message, progress);
      return;
    case "snap-status":
      stepLeaderSnapshotStatus(raft, message, progress);
      return;
    case "unreachable":
      // Streaming to an unreachable follower wastes the window; probe until it answers.
      if (progress.state === "replicate") progress.becomeProbe();
      return;
    case "transfer-leader":
      stepLeaderTransfer(raft, message, progress);
      return;
    default:
      return;
  }
}

function stepLeaderCheckQuorum(raft: Raft): void {
  if (!raft.tracker.quorumActive(raft.id)) {
    raft.logger.warn({ term: raft.term }, "stepping down: a quorum was not active within the election timeout");
    raft.becomeFollower(raft.term, noneId);
  }
  for (const [id, progress] of raft.tracker.progress) if (id !== raft.id) progress.recentActive = false;
}

function stepLeaderPropose(raft: Raft, message: Message): void {
  invariant(message.entries.length > 0, "a proposal must carry entries");
  if (!raft.tracker.progress.has(raft.id)) {
    raft.dropProposal(message, "this node was removed from the cluster");
    return;
  }
  if (raft.leadTransferee !== noneId) {
    raft.dropProposal(message, `leadership is being transferred to ${raft.leadTransferee}`);
    return;
  }
  let confChanges = 0;
  for (const entry of message.entries) {
    if (entry.type !== "conf-change") continue;
    confChanges += 1;
    const refusal = confChanges > 1 ? "only one conf change may be proposed at a time" : raft.confChangeRefusal(decodeConfChange(entry.data));
    if (refusal !== null) {
      raft.dropProposal(message, `conf change refused: ${refusal}`);
      return;
    }
  }
  const lastBefore = raft.log.lastIndex();
  if (!raft.appendEntries(message.entries)) {
    raft.dropProposal(message, "too many uncommitted entry bytes; retry once the log catches up");
    return;
  }
  message.entries.forEach((entry, offset) => {
    if (entry.type === "conf-change") raft.pendingConfIndex = lastBefore + 1 + offset;
  });
  raft.bcastAppend();
}

function stepLeaderReadIndex(raft: Raft, message: Message): void {
  if (raft.tracker.isSingleton()) {
    raft.respondToReadIndex(message, raft.log.committed);
    return;
  }
  if (raft.readOnly.size() + raft.pendingReadIndexMessages.length >= pendingReadIndexRequestsMax) {
    raft.dropProposal(message, "too many pending read requests");
    return;
  }
  // Until an entry of this term commits, our commit index may lag the true one (§6.4).
  if (!raft.committedEntryInCurrentTerm()) {
    raft.pendingReadIndexMessages.push(message);
    return;
  }
  raft.sendReadIndexConfirmation(message);
}

function stepLeaderAppendRejected(raft: Raft, message: Message, progress: Progress): void {
  let nextProbeIndex = message.rejectHint;
  if (message.logTerm > 0) nextProbeIndex = raft.log.findConflictByTerm(message.rejectHint, message.logTerm);
  if (progress.maybeDecreaseTo(message.index, nextProbeIndex)) {
    if (progress.state === "replicate") progress.becomeProbe();
    raft.sendAppend(message.from);
  }
}

function stepLeaderAppendAccepted(raft: Raft, message: Message, progress: Progress): void {
  const wasPaused = progress.isPaused();
  // A probe answered at the match index moves a caught-up follower back to replicate
  // (etcd's condition): after an unreachable report, it would otherwise stay in probe, one
  // append per round trip, until its next proposal happened to move match.
  const caughtUpProbe = progress.match === message.index && progress.state === "probe";
  if (!progress.maybeUpdate(message.index) && !caughtUpProbe) return;
  if (progress.state === "probe") {
    progress.becomeReplicate();
  } else if (progress.state === "snapshot" && progress.match + 1 >= raft.log.firstIndex()) {
    // The follower caught up past our compaction point: plain appends work again.
    progress.becomeProbe();
    progress.becomeReplicate();
  } else if (progress.state === "replicate") {
    progress.inflights.freeLE(message.index);
  }
  if (raft.maybeCommit()) {
    raft.releasePendingReadIndexMessages();
    raft.bcastAppend();
  } else if (wasPaused) {
    raft.sendAppend(message.from);
  }
  // Fill the window while there is something to send.
  while (raft.maybeSendAppend(message.from, false));
  if (message.from === raft.leadTransferee && progress.match === raft.log.lastIndex()) {
    raft.logger.info({ to: message.from }, "transferee caught up: sending timeout-now");
    raft.sendTimeoutNow(message.from);
  }
}

function stepLeaderHeartbeatResponse(raft: Raft, message: Message, progress: Progress): void {
  progress.recentActive = true;
  progress.probeSent = false;
  // Free one slot so a follower whose acks were lost makes progress.
  if (progress.state === "replicate" && progress.inflights.full()) progress.inflights.freeFirstOne();
  // A caught-up follower in probe gets an empty append too: its answer restores replicate.
  if (progress.match < raft.log.lastIndex() || progress.state === "probe") raft.sendAppend(message.from);
  if (message.context.length === 0) return;
  const acks = raft.readOnly.receiveAck(message.from, message.context);
  const votes = new Map<NodeId, boolean>([...acks].map((id) => [id, true]));
  if (majorityVoteResult(raft.tracker.voters, votes) !== "won") return;
  for (const { request, index } of raft.readOnly.advance(message.context)) raft.respondToReadIndex(request, index);
}

function stepLeaderSnapshotStatus(raft: Raft, message: Message, progress: Progress): void {
  if (progress.state !== "snapshot") return;
  if (message.reject) progress.pendingSnapshot = 0;
  progress.becomeProbe();
  // Wait for a heartbeat answer before the next append: the follower may still be busy.
  progress.probeSent = true;
}

function stepLeaderTransfer(raft: Raft, message: Message, progress: Progress): void {
  const transferee = message.from;
  if (progress.isLearner) {
    raft.logger.info({ transferee }, "ignored a transfer to a learner");
    return;
  }
  if (raft.leadTransferee !== noneId) {
    if (raft.leadTransferee === transferee) return;
    raft.abortLeaderTransfer();
  }
  if (transferee === raft.id) return;
  // The transfer must finish within one election timeout.
  raft.electionElapsed = 0;
  raft.leadTransferee = transferee;
  raft.logger.info({ transferee }, "starting leadership transfer");
  if (progress.match === raft.log.lastIndex()) raft.sendTimeoutNow(transferee);
  else raft.sendAppend(transferee);
}

function stepCandidate(raft: Raft, message: Message): void {
  const myResponseType = raft.state === "pre-candidate" ? "pre-vote-resp" : "vote-resp";
  switch (message.type) {
    case "prop":
      raft.dropProposal(message, "no leader: an election is in progress");
      return;
    case "read-index":
      raft.dropProposal(message, "no leader: an election is in progress");
      return;
    case "app":
      raft.becomeFollower(message.term, message.from);
      raft.handleAppendEntries(message);
      return;
    case "heartbeat":
      raft.becomeFollower(message.term, message.from);
      raft.handleHeartbeat(message);
      return;
    case "snap":
      raft.becomeFollower(message.term, message.from);
      raft.handleSnapshot(message);
      return;
    case myResponseType: {
      const result = raft.poll(message.from, !message.reject);
      if (result === "won") {
        if (raft.state === "pre-candidate") {
          raft.campaign("election");
        } else {
          raft.becomeLeader();
          raft.bcastAppend();
        }
      } else if (result === "lost") {
        raft.becomeFollower(raft.term, noneId);
      }
      return;
    }
    default:
      return;
  }
}

function stepFollower(raft: Raft, message: Message): void {
  switch (message.type) {
    case "transfer-leader":
      if (raft.lead === noneId) {
        raft.logger.info({ transferee: message.from, term: raft.term }, "ignored a leadership transfer: no leader known");
        return;
      }
      raft.messages.push({ ...message, to: raft.lead });
      return;
    case "prop":
    case "read-index":
      if (raft.lead === noneId) {
        raft.dropProposal(message, `no leader is known in term ${raft.term}`);
        return;
      }
      raft.messages.push({ ...message, to: raft.lead });
      return;
    case "app":
      raft.electionElapsed = 0;
      raft.lead = message.from;
      raft.handleAppendEntries(message);
      return;
    case "heartbeat":
      raft.electionElapsed = 0;
      raft.lead = message.from;
      raft.handleHeartbeat(message);
      return;
    case "snap":
      raft.electionElapsed = 0;
      raft.lead = message.from;
      raft.handleSnapshot(message);
      return;
    case "unreachable":
      // The transport could not reach the leader: its stream failed, or a reconnect did
      // (mostly a leader process that died, whose host reset the connection). Rather than
      // wait out the whole election timeout from the leader's last heartbeat (a second, by
      // default, added to every failover), this follower gives up the leader's lease and
      // keeps only the randomized part of its timeout. A leader that is in fact alive
      // restores both with its next heartbeat, and members that still hear from it keep their
      // lease, so they refuse this node's pre-votes: a broken link alone cannot depose a
      // leader (it can only lose its quorum, which check-quorum handles). A silent failure (a
      // partition, a host that lost power) resets nothing and still takes the full timeout.
      if (message.from === raft.lead) raft.electionElapsed = Math.max(raft.electionElapsed, raft.electionTimeout);
      return;
    case "timeout-now":
      raft.logger.info({ from: message.from }, "received timeout-now: campaigning for leadership transfer");
      // Leadership transfer never uses pre-vote: the old leader asked us to take over.
      raft.hup("transfer");
      return;
    case "read-index-resp":
      raft.readStates.push({ index: message.index, requestContext: message.context });
      return;
    default:
      return;
  }
}
