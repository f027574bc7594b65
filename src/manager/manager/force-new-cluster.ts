import { systemClock } from "../../common/clock.js";
import { FailedPreconditionError, throwIfAborted } from "../../common/errors.js";
import type { Logger } from "../../common/logger.js";
import { forceNewCluster, type StateMachine } from "../../raft/index.js";
import { MemoryStore } from "../store/index.js";
import { MemberDirectory, type ManagerMember } from "./member-directory.js";
import { ManagerStateMachine } from "./replicated-state.js";
import { loadManagerState, saveManagerState, swarmPaths } from "./state-file.js";

export interface ForceNewClusterOptions {
  /** The daemon's data directory, holding a manager's `swarm/` state. */
  readonly dataDir: string;
  readonly logger: Logger;
  /** The address to advertise from now on; the one state.json records when absent. */
  readonly advertiseAddress?: string;
  readonly signal?: AbortSignal;
}

export interface ForcedCluster {
  readonly clusterId: string;
  readonly nodeId: string;
  /** Managers whose raft membership ended: they must leave and join again. */
  readonly removedManagers: readonly ManagerMember[];
}

/**
 * `swarm init --force-new-cluster` on a manager's stopped state (swarmkit and etcd do the
 * same): raft is rewritten so that this manager is the only voter, every other manager is
 * recorded as removed in the manager directory, and state.json is updated to match. The
 * store (services, nodes, tasks, cluster, CA, tokens) is kept whole: other nodes stay in
 * it, and workers reconnect with the addresses and certificates they already hold. Start
 * the manager afterwards with restartManager. FailedPreconditionError when the data
 * directory holds no manager state or this manager was not a voter.
 */
export async function forceNewManagerCluster(options: ForceNewClusterOptions): Promise<ForcedCluster> {
  throwIfAborted(options.signal);
  const paths = swarmPaths(options.dataDir);
  const signalOption = options.signal === undefined ? {} : { signal: options.signal };
  const state = await loadManagerState(paths, signalOption);
  if (state === undefined) {
    throw new FailedPreconditionError(
      `${paths.stateFile} does not exist: --force-new-cluster needs the data directory of a manager ("shoal swarm init" starts a new swarm)`,
    );
  }
  const address = options.advertiseAddress ?? state.advertiseAddress;
  const directory = new MemberDirectory(state.managers);
  const store = new MemoryStore({ proposer: null, logger: options.logger, clock: systemClock });
  const removedManagers: ManagerMember[] = [];
  try {
    const replicated = new ManagerStateMachine({ store, directory });
    // The directory is final only once raft replayed it: others are marked removed just
    // before the snapshot that records the one-voter configuration is taken.
    const stateMachine: StateMachine = {
      apply: (entry) => replicated.apply(entry),
      restore: (data) => replicated.restore(data),
      snapshot: () => {
        for (const member of directory.all()) {
          if (member.raftId === state.raftId) directory.set({ ...member, address, suffrage: "voter" });
          else if (member.suffrage !== "removed") {
            directory.set({ ...member, suffrage: "removed" });
            removedManagers.push(member);
          }
        }
        if (directory.byRaftId(state.raftId) === undefined) {
          directory.set({ raftId: state.raftId, nodeId: state.nodeId, address, suffrage: "voter" });
        }
        return replicated.snapshot();
      },
    };
    await forceNewCluster({ dataDir: paths.raft, id: state.raftId, address, stateMachine, logger: options.logger, ...signalOption });
    await saveManagerState(paths, { ...state, advertiseAddress: address, managers: directory.all() }, signalOption);
    options.logger.warn(
      { clusterId: state.clusterId, removed: removedManagers.map((member) => member.nodeId) },
      "forced a new cluster: this manager is the only one; the others must leave the swarm and join again",
    );
    return { clusterId: state.clusterId, nodeId: state.nodeId, removedManagers };
  } finally {
    store.close();
  }
}
