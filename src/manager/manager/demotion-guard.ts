import type { ChannelCredentials } from "@grpc/grpc-js";

import type { Clock } from "../../common/clock.js";
import { FailedPreconditionError } from "../../common/errors.js";
import type { ControlApi } from "../controlapi/index.js";
import type { MemberDirectory } from "./member-directory.js";
import { requestRaftProgress } from "./membership-service.js";

/** How long the leader waits for each manager's answer when checking that a demotion keeps a quorum. */
export const demotionProbeTimeoutMs = 1_000;

export interface DemotionGuardOptions {
  readonly directory: MemberDirectory;
  /** This manager's raft id: it answers for itself without a call. */
  readonly selfRaftId: number;
  readonly credentials: ChannelCredentials;
  readonly clock: Clock;
}

function wantsWorker(spec: unknown): boolean {
  return typeof spec === "object" && spec !== null && "role" in spec && spec.role === "worker";
}

/**
 * Refuses `node demote` of a voting manager when the managers left would not hold a quorum
 * among those that answer now (docker: "would result in loss of quorum"): the demoted
 * manager leaves raft, and a cluster that cannot commit its removal would be stuck.
 */
async function checkDemotion(api: ControlApi, reference: string, options: DemotionGuardOptions): Promise<void> {
  const node = api.getNode(reference);
  const member = options.directory.byNodeId(node.id);
  if (member?.suffrage !== "voter") return;
  const remaining = options.directory.active().filter((item) => item.suffrage === "voter" && item.raftId !== member.raftId);
  // The last manager: the control API refuses that with its own message.
  if (remaining.length === 0) return;
  const quorum = Math.floor(remaining.length / 2) + 1;
  const answers = await Promise.all(
    remaining.map(async (item) => {
      if (item.raftId === options.selfRaftId) return true;
      try {
        await requestRaftProgress({ address: item.address, credentials: options.credentials, clock: options.clock, timeoutMs: demotionProbeTimeoutMs, signal: undefined });
        return true;
      } catch {
        // an unreachable manager is exactly what this check counts
        return false;
      }
    }),
  );
  const reachable = answers.filter(Boolean).length;
  if (reachable < quorum) {
    throw new FailedPreconditionError(
      `can't demote ${node.id}: it would result in loss of quorum (${reachable} of the ${remaining.length} other managers answer, ${quorum} are needed). ` +
        "Bring the unreachable managers back, or demote them first",
    );
  }
}

/** The control API with updateNode checking demotions first; every other method is the API's own. */
export function guardDemotions(api: ControlApi, options: DemotionGuardOptions): ControlApi {
  const updateNode: ControlApi["updateNode"] = async (reference, version, spec, callOptions) => {
    if (wantsWorker(spec)) await checkDemotion(api, reference, options);
    return api.updateNode(reference, version, spec, callOptions);
  };
  return new Proxy(api, {
    get(target, property, receiver): unknown {
      if (property === "updateNode") return updateNode;
      const value: unknown = Reflect.get(target, property, receiver);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}
