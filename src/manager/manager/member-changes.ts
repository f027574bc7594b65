import type { ChannelCredentials } from "@grpc/grpc-js";

import type { Clock } from "../../common/clock.js";
import { FailedPreconditionError, NotFoundError, ResourceExhaustedError, UnavailableError, errorMessage } from "../../common/errors.js";
import type { Logger } from "../../common/logger.js";
import { NotLeaderError, type RaftNode } from "../../raft/index.js";
import { directoryMembersMax, raftIdMax, type ManagerMember, type MemberDirectory } from "./member-directory.js";
import { requestRaftProgress } from "./membership-service.js";
import { encodeMemberEntry } from "./replicated-state.js";

/** How often the leader looks for learners to promote. */
export const memberReconcileIntervalMs = 500;
/** A learner this many entries or fewer behind the leader's commit counts as caught up. */
export const promotionLagEntriesMax = 64;
/** How long the leader waits for a learner's progress answer. */
export const progressCallTimeoutMs = 2_000;
/** Attempts to draw an unused raft id before giving up (collisions of 53-bit ids are rare). */
const raftIdDrawsMax = 16;

/**
 * The leader's membership changes, one at a time (raft accepts only one pending conf change):
 * admitting a manager as a learner, promoting caught-up learners to voters, and removing a
 * manager. Each change is recorded in the manager directory through raft, before the conf
 * change for additions (so every member knows the new id's node before it hears from it)
 * and after it for promotions and removals.
 */
export class MemberChanges {
  readonly #raftNode: RaftNode;
  readonly #directory: MemberDirectory;
  readonly #credentials: ChannelCredentials;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #randomBytes: (size: number) => Uint8Array;
  readonly #abandoned: (member: ManagerMember) => boolean;
  #tail: Promise<void> = Promise.resolve();

  constructor(options: {
    raftNode: RaftNode;
    directory: MemberDirectory;
    credentials: ChannelCredentials;
    clock: Clock;
    logger: Logger;
    randomBytes: (size: number) => Uint8Array;
    /**
     * Whether a member was demoted while it cannot leave raft by itself (its node is down):
     * the leader removes it, as swarmkit's role manager does.
     */
    abandoned?: (member: ManagerMember) => boolean;
  }) {
    this.#raftNode = options.raftNode;
    this.#directory = options.directory;
    this.#credentials = options.credentials;
    this.#clock = options.clock;
    this.#logger = options.logger.child({ component: "member-changes" });
    this.#randomBytes = options.randomBytes;
    this.#abandoned = options.abandoned ?? (() => false);
  }

  async #exclusive<T>(work: () => Promise<T>): Promise<T> {
    const previous = this.#tail;
    let release: () => void = () => undefined;
    this.#tail = new Promise((resolve) => {
      release = resolve;
    });
    try {
      await previous;
      return await work();
    } finally {
      release();
    }
  }

  #requireLeader(): void {
    const status = this.#raftNode.status();
    if (status.role !== "leader") throw new NotLeaderError(status.leader, status.members.get(status.leader));
  }

  #newRaftId(): number {
    for (let draw = 0; draw < raftIdDrawsMax; draw += 1) {
      const bytes = Buffer.from(this.#randomBytes(8));
      const id = Number(bytes.readBigUInt64BE(0) % BigInt(raftIdMax)) + 1;
      if (!this.#directory.isUsedRaftId(id)) return id;
    }
    throw new UnavailableError(`could not draw an unused raft id in ${raftIdDrawsMax} attempts: retry`);
  }

  async #record(member: ManagerMember, signal?: AbortSignal): Promise<void> {
    await this.#raftNode.propose(encodeMemberEntry(member), signal === undefined ? {} : { signal });
  }

  /**
   * Admits the manager `nodeId` at `address` as a learner and returns its raft id; the
   * same id again when it is already a member (a retried join). NotLeaderError on a follower.
   */
  join(request: { nodeId: string; address: string }, options: { signal?: AbortSignal } = {}): Promise<number> {
    return this.#exclusive(async () => {
      this.#requireLeader();
      const existing = this.#directory.byNodeId(request.nodeId);
      if (existing !== undefined) return existing.raftId;
      // Refused here rather than when applied: a full directory on the apply path would stop every manager.
      if (this.#directory.all().length >= directoryMembersMax) {
        throw new ResourceExhaustedError(`the cluster has had ${directoryMembersMax} managers, the most it records: no more can join`);
      }
      const member: ManagerMember = { raftId: this.#newRaftId(), nodeId: request.nodeId, address: request.address, suffrage: "learner" };
      await this.#record(member, options.signal);
      await this.#raftNode.addLearner({ id: member.raftId, address: member.address }, options);
      this.#logger.info({ nodeId: member.nodeId, raftId: member.raftId, address: member.address }, "manager added to raft as a learner");
      return member.raftId;
    });
  }

  /**
   * Removes the manager `nodeId` from raft for good. NotFoundError when it is no member,
   * FailedPreconditionError for this leader itself or the last voter.
   */
  leave(request: { nodeId: string }, options: { signal?: AbortSignal } = {}): Promise<void> {
    return this.#exclusive(async () => {
      this.#requireLeader();
      const member = this.#directory.byNodeId(request.nodeId);
      if (member === undefined) throw new NotFoundError(`node ${request.nodeId} is not a raft member`);
      if (member.raftId === this.#raftNode.id) {
        throw new FailedPreconditionError("the leader cannot remove itself: hand leadership to another manager first");
      }
      await this.#remove(member, options.signal);
    });
  }

  async #remove(member: ManagerMember, signal: AbortSignal | undefined): Promise<void> {
    const voters = this.#directory.active().filter((item) => item.suffrage === "voter");
    if (member.suffrage === "voter" && voters.length <= 1) throw new FailedPreconditionError("the last voting manager cannot leave raft");
    const options = signal === undefined ? {} : { signal };
    await this.#raftNode.removeMember(member.raftId, options);
    await this.#record({ ...member, suffrage: "removed" }, signal);
    this.#logger.info({ nodeId: member.nodeId, raftId: member.raftId }, "manager removed from raft");
  }

  /** Runs on the leader until `signal` fires: promotes caught-up learners, one change at a time. */
  async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      try {
        await this.#exclusive(() => this.#reconcileOnce(signal));
      } catch (error) {
        if (signal.aborted) break;
        this.#logger.warn({ err: errorMessage(error) }, "member reconciliation failed; retrying");
      }
      await this.#clock.sleep(memberReconcileIntervalMs, { signal }).catch(() => undefined);
    }
  }

  async #reconcileOnce(signal: AbortSignal): Promise<void> {
    if (signal.aborted) return;
    this.#requireLeader();
    const inRaft = this.#raftNode.status().members;
    // Voters are in raft from their learner days on; one missing was removed by a leader
    // that lost its term before recording it.
    const removed = this.#directory.active().find((member) => member.suffrage === "voter" && !inRaft.has(member.raftId));
    if (removed !== undefined) {
      await this.#record({ ...removed, suffrage: "removed" }, signal);
      this.#logger.info({ nodeId: removed.nodeId, raftId: removed.raftId }, "recorded a manager raft had already removed");
      return;
    }
    const abandoned = this.#directory.active().find((member) => member.raftId !== this.#raftNode.id && this.#abandoned(member));
    if (abandoned !== undefined) {
      await this.#remove(abandoned, signal);
      return;
    }
    const learner = this.#directory.active().find((member) => member.suffrage === "learner");
    if (learner === undefined) return;
    if (!inRaft.has(learner.raftId)) {
      // The directory entry committed but the leader that wrote it lost its term before the conf change.
      await this.#raftNode.addLearner({ id: learner.raftId, address: learner.address }, { signal });
      return;
    }
    const progress = await requestRaftProgress({
      address: learner.address,
      credentials: this.#credentials,
      clock: this.#clock,
      timeoutMs: progressCallTimeoutMs,
      signal,
    });
    if (progress.raftId !== learner.raftId) {
      throw new FailedPreconditionError(`${learner.address} answers as raft member ${progress.raftId}, not ${learner.raftId}`);
    }
    const commit = this.#raftNode.status().commit;
    if (progress.applied + promotionLagEntriesMax < commit) return;
    await this.#raftNode.promote(learner.raftId, { signal });
    await this.#record({ ...learner, suffrage: "voter" }, signal);
    this.#logger.info({ nodeId: learner.nodeId, raftId: learner.raftId, applied: progress.applied, commit }, "learner promoted to voter");
  }
}
