import { rm } from "node:fs/promises";

import type { ChannelCredentials } from "@grpc/grpc-js";

import type { Clock } from "../../common/clock.js";
import { FailedPreconditionError, UnavailableError, errorMessage, throwIfAborted } from "../../common/errors.js";
import type { Logger } from "../../common/logger.js";
import type { RaftNode } from "../../raft/index.js";
import type { MemberDirectory } from "./member-directory.js";
import { requestRaftLeave } from "./membership-service.js";
import type { SwarmPaths } from "./state-file.js";

/** How long leaving may take in all: handing over leadership, then the leader's removal. */
export const leaveTimeoutMs = 20_000;
/** How long one leadership hand-over may take before it is tried again (raft gives up on a slow one). */
export const leadershipTransferWaitMsMax = 5_000;
/** Pause between attempts while no leader is known or the leader changes under us. */
export const leaveRetryDelayMs = 200;
/**
 * A forced leave stops waiting for a leader after this long without one (a few election
 * timeouts): no leader means no quorum to remove this member with, and none is coming soon.
 */
export const forcedLeaveLeaderlessMsMax = 5_000;

export interface LeaveOptions {
  raftNode: RaftNode;
  directory: MemberDirectory;
  credentials: ChannelCredentials;
  clock: Clock;
  logger: Logger;
  /** Closes the manager (raft, services, components). */
  close: () => Promise<void>;
  paths: SwarmPaths;
  force: boolean;
  signal?: AbortSignal | undefined;
}

/** Waits until raft reports a leader other than this node, or `timeoutMs` passes. */
function waitForOtherLeader(raftNode: RaftNode, clock: Clock, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    let cancelTimer: () => void = () => undefined;
    const finish = (handedOver: boolean): void => {
      unsubscribe();
      cancelTimer();
      resolve(handedOver);
    };
    const unsubscribe = raftNode.onLeaderChange((change) => {
      if (change.leader !== 0 && change.leader !== raftNode.id) finish(true);
    });
    cancelTimer = clock.setTimer(timeoutMs, () => finish(false));
  });
}

async function removeSelf(options: LeaveOptions): Promise<void> {
  const { raftNode, clock, logger, signal } = options;
  const deadline = clock.now() + leaveTimeoutMs;
  let lastError: unknown = new UnavailableError("no raft leader answered");
  let leaderSeenAt = clock.now();
  while (clock.now() < deadline) {
    throwIfAborted(signal);
    const status = raftNode.status();
    if (status.leader !== 0) leaderSeenAt = clock.now();
    if (options.force && clock.now() - leaderSeenAt > forcedLeaveLeaderlessMsMax) {
      throw new UnavailableError(`no raft leader for ${forcedLeaveLeaderlessMsMax} ms: this manager cannot be removed through one`);
    }
    if (status.role === "leader") {
      const successor = options.directory.active().find((member) => member.raftId !== raftNode.id && member.suffrage === "voter");
      if (successor === undefined) throw new FailedPreconditionError("no other voting manager can take over leadership");
      logger.info({ to: successor.raftId }, "handing raft leadership over before leaving");
      raftNode.transferLeadership(successor.raftId);
      await waitForOtherLeader(raftNode, clock, Math.min(leadershipTransferWaitMsMax, Math.max(0, deadline - clock.now())));
      continue;
    }
    const address = status.leader === 0 ? undefined : status.members.get(status.leader);
    if (address !== undefined) {
      try {
        await requestRaftLeave({ address, credentials: options.credentials, clock, signal });
        return;
      } catch (error) {
        if (!(error instanceof UnavailableError)) throw error;
        lastError = error;
        logger.debug({ err: errorMessage(error) }, "leave not accepted yet; retrying");
      }
    }
    await clock.sleep(leaveRetryDelayMs, signal === undefined ? {} : { signal });
  }
  throw new UnavailableError(`could not leave raft within ${leaveTimeoutMs} ms: ${errorMessage(lastError)}`, { cause: lastError });
}

/**
 * A manager leaving the swarm: removed from raft by the leader (after handing leadership
 * over if it leads), then closed, then its swarm state deleted so that a restart does not
 * rejoin with a removed identity. The last manager leaves only with `force`.
 */
export async function leaveRaft(options: LeaveOptions): Promise<void> {
  throwIfAborted(options.signal);
  const others = options.directory.active().filter((member) => member.raftId !== options.raftNode.id && member.suffrage === "voter");
  if (others.length === 0 && !options.force) {
    throw new FailedPreconditionError(
      "this is the last manager: leaving destroys the swarm's state. Add another manager first, or leave with force to give the swarm up",
    );
  }
  if (others.length > 0) {
    try {
      await removeSelf(options);
    } catch (error) {
      // A manager the cluster already dropped (after --force-new-cluster elsewhere), or one
      // cut off from every other, can only leave on its own: docker's --force does that too.
      if (!options.force || !(error instanceof UnavailableError)) throw error;
      options.logger.warn({ err: errorMessage(error) }, "could not leave raft through a leader; leaving anyway (force): demote and remove this node on a manager");
    }
  }
  await options.close();
  await rm(options.paths.root, { recursive: true, force: true });
  options.logger.info("left the swarm and deleted its state");
}
