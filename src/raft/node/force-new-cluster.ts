import { FailedPreconditionError, InvalidArgumentError, throwIfAborted } from "../../common/errors.js";
import type { Logger } from "../../common/logger.js";
import { decodeConfChange } from "../core/index.js";
import type { ConfChange, ConfState, NodeId } from "../core/index.js";
import type { StateMachine } from "../node.js";
import { DiskLogStorage } from "../wal/disk-storage.js";
import { decodeEntryEnvelope, decodeSnapshotEnvelope, encodeSnapshotEnvelope } from "./envelope.js";

/** Committed entries replayed per read while rebuilding the state (bounds memory, not the total). */
const replayBatchBytesMax = 16 * 1024 * 1024;

export interface ForceNewClusterOptions {
  /** The member's raft data directory (WAL and snapshots), as RaftNode uses it. */
  readonly dataDir: string;
  /** This member's raft id: it must be a voter of the recovered configuration. */
  readonly id: NodeId;
  /** Where this member's raft transport is reached from now on, "host:port". */
  readonly address: string;
  /** Empty on entry; holds the committed state on return (the same state written to the snapshot). */
  readonly stateMachine: StateMachine;
  readonly logger: Logger;
  readonly signal?: AbortSignal;
}

export interface ForceNewClusterResult {
  /** The index and term of the snapshot that now starts the log. */
  readonly index: number;
  readonly term: number;
  /** The committed index the state was rebuilt to; entries after it were discarded. */
  readonly committed: number;
  readonly discardedEntries: number;
  /** Every id other than this member's that the old configuration knew: removed for good. */
  readonly removed: readonly NodeId[];
}

/** The configuration after one committed conf change, by the rules RaftCore.applyConfChange follows. */
export function confStateAfter(state: ConfState, change: ConfChange): ConfState {
  const removed = state.removed ?? [];
  if (removed.includes(change.nodeId)) return state;
  const voters = state.voters.filter((id) => id !== change.nodeId);
  const learners = state.learners.filter((id) => id !== change.nodeId);
  switch (change.type) {
    case "add-voter":
      return { voters: [...voters, change.nodeId], learners, removed };
    case "add-learner":
      // On a voter, a demotion; but the last voter stays.
      if (state.voters.length === 1 && state.voters[0] === change.nodeId) return state;
      return { voters, learners: [...learners, change.nodeId], removed };
    case "remove-node":
      if (state.voters.length === 1 && state.voters[0] === change.nodeId) return state;
      return { voters, learners, removed: [...removed, change.nodeId] };
  }
}

/**
 * Rebuilds the committed state of a stopped member and rewrites its raft data so that it
 * restarts as the only voter of its cluster (etcd's --force-new-cluster): the state machine
 * is restored from the newest snapshot and the committed entries after it, then saved as a
 * new snapshot whose configuration holds this member alone and removes every other id. The
 * snapshot sits one index past anything the log held, in a new term, and resets the log, so
 * uncommitted entries are dropped and a later restart replays a consistent state.
 *
 * The caller must have stopped any RaftNode on `dataDir`. FailedPreconditionError when the
 * directory holds no raft state, or when this member is not a voter of it.
 */
export async function forceNewCluster(options: ForceNewClusterOptions): Promise<ForceNewClusterResult> {
  throwIfAborted(options.signal);
  const storage = await DiskLogStorage.open({ dir: options.dataDir, logger: options.logger });
  try {
    const snapshot = storage.snapshot();
    const { hardState } = storage.initialState();
    if (snapshot.metadata.index === 0 && storage.lastIndex() === 0) {
      throw new FailedPreconditionError(`${options.dataDir} holds no raft state: force a new cluster from a former manager's data directory`);
    }
    if (snapshot.metadata.index > 0) await options.stateMachine.restore(decodeSnapshotEnvelope(snapshot.data).data);
    const committed = Math.min(hardState.commit, storage.lastIndex());
    const replayed = replayCommitted(storage, snapshot.metadata.confState, snapshot.metadata.index, committed, options.stateMachine);
    if (!replayed.confState.voters.includes(options.id)) {
      throw new FailedPreconditionError(
        `raft member ${options.id} is not a voter of the cluster recorded in ${options.dataDir}: force a new cluster from a manager that was a voter`,
      );
    }
    const known = [...replayed.confState.voters, ...replayed.confState.learners, ...(replayed.confState.removed ?? []), ...replayed.mentioned];
    const removed = [...new Set(known)].filter((id) => id !== options.id).sort((a, b) => a - b);
    const discardedEntries = Math.max(0, storage.lastIndex() - committed);
    const index = Math.max(storage.lastIndex(), committed, snapshot.metadata.index) + 1;
    // Past the log's last term too: a torn write may have kept entries of a term the hard
    // state never recorded (the core raises its term the same way when it starts).
    const term = Math.max(hardState.term, storage.term(storage.lastIndex())) + 1;
    const data = await encodeSnapshotEnvelope({ members: new Map([[options.id, options.address]]), data: await options.stateMachine.snapshot() });
    throwIfAborted(options.signal);
    await storage.save({
      snapshot: { metadata: { index, term, confState: { voters: [options.id], learners: [], removed } }, data },
      entries: [],
      hardState: { term, vote: 0, commit: index },
    });
    options.logger.warn({ index, term, committed, removed, discardedEntries }, "forced a new one-voter raft cluster from this member's committed state");
    return { index, term, committed, discardedEntries, removed };
  } finally {
    await storage.close();
  }
}

/** Applies entries (after, upTo] to the state machine; conf changes update the configuration. */
function replayCommitted(
  storage: DiskLogStorage,
  initial: ConfState,
  after: number,
  upTo: number,
  stateMachine: StateMachine,
): { confState: ConfState; mentioned: NodeId[] } {
  let confState = initial;
  const mentioned: NodeId[] = [];
  let next = after + 1;
  while (next <= upTo) {
    const batch = storage.entries(next, upTo + 1, replayBatchBytesMax);
    if (batch.length === 0) throw new InvalidArgumentError(`the raft log returned no entry at ${next}`);
    for (const entry of batch) {
      if (entry.type === "conf-change") {
        const change = decodeConfChange(entry.data);
        mentioned.push(change.nodeId);
        confState = confStateAfter(confState, change);
      } else if (entry.data.length > 0) {
        stateMachine.apply({ index: entry.index, term: entry.term, data: decodeEntryEnvelope(entry.data, entry.index).data });
      }
      next = entry.index + 1;
    }
  }
  return { confState, mentioned };
}
