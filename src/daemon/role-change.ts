import { FailedPreconditionError, UnavailableError, errorMessage } from "../common/errors.js";
import type { Logger } from "../common/logger.js";
import type { ContainerService } from "../engine/index.js";
import { renewNodeCertificate, type NodeCredentials } from "../manager/ca/index.js";
import { hostOfAddress, type Manager } from "../manager/manager/index.js";
import type { TlsMaterial } from "../rpc/tls/index.js";

/** How often a manager reads its own Node from its store replica to notice `node demote` (free). */
export const managerRoleCheckIntervalMs = 2_000;
/**
 * How often a worker asks a manager's NodeCA for a renewed certificate, which carries the
 * role the cluster wants (swarmkit learns promotions the same way): one signature each.
 */
export const workerRoleCheckIntervalMs = 4_000;

/** Whether `node demote` reached this manager: its Node's spec now says worker. */
export function managerDemoted(manager: Manager): boolean {
  const node = manager.store.view((tx) => tx.get("node", manager.nodeId));
  return node?.spec.role === "worker";
}

/** Managers other than this one, by address, to reconnect to as a worker. */
export function otherManagerAddresses(manager: Manager): string[] {
  return manager
    .managers()
    .filter((member) => member.nodeId !== manager.nodeId)
    .map((member) => member.address);
}

/** What a promoted worker joins raft with. */
export interface Promotion {
  readonly credentials: NodeCredentials;
  /** The manager that issued them. */
  readonly address: string;
}

/**
 * Asks the managers in turn for a renewed certificate (the current one is the proof) and
 * returns the first answer. Only an outage moves on to the next manager.
 */
export async function renewFromFirstManager(options: {
  managers: readonly string[];
  current: TlsMaterial;
  host: string;
  signal?: AbortSignal;
}): Promise<Promotion> {
  let lastError: unknown = new UnavailableError("no manager address is known to renew the certificate with");
  for (const address of options.managers) {
    try {
      const credentials = await renewNodeCertificate({
        address,
        current: options.current,
        addresses: [options.host],
        ...(options.signal === undefined ? {} : { signal: options.signal }),
      });
      return { credentials, address };
    } catch (error) {
      if (!(error instanceof UnavailableError) || options.signal?.aborted === true) throw error;
      lastError = error;
    }
  }
  throw lastError;
}

/** A worker's check: manager credentials when the cluster promoted it, else undefined. */
export async function workerPromotion(options: {
  managers: readonly string[];
  current: TlsMaterial;
  host: string;
  signal: AbortSignal;
}): Promise<Promotion | undefined> {
  const answer = await renewFromFirstManager(options);
  return answer.credentials.identity.role === "manager" ? answer : undefined;
}

/**
 * Worker credentials for a demoted manager, from its own NodeCA first (its store says
 * worker) and then the others. FailedPreconditionError when the cluster wants a manager again.
 */
export async function demotedCredentials(manager: Manager): Promise<NodeCredentials> {
  const { credentials } = await renewFromFirstManager({
    managers: [manager.advertiseAddress, ...otherManagerAddresses(manager)],
    current: manager.tlsMaterial(),
    host: hostOfAddress(manager.advertiseAddress),
  });
  if (credentials.identity.role !== "worker") {
    throw new FailedPreconditionError(`node ${manager.nodeId} was promoted again before its demotion completed`);
  }
  return credentials;
}

/**
 * Runs `probe` every `intervalMs` until it reports a change (then hands it to `onChange`
 * and ends) or `signal` fires. A failing probe is logged and tried again.
 */
export async function watchRole<T>(options: {
  intervalMs: number;
  probe: (signal: AbortSignal) => Promise<T | undefined> | T | undefined;
  onChange: (change: T) => void;
  sleep: (ms: number, options: { signal: AbortSignal }) => Promise<void>;
  logger: Logger;
  signal: AbortSignal;
}): Promise<void> {
  const { signal } = options;
  while (!signal.aborted) {
    try {
      await options.sleep(options.intervalMs, { signal });
    } catch {
      // aborted: the loop condition ends it
      continue;
    }
    try {
      const change = await options.probe(signal);
      if (change !== undefined) {
        options.onChange(change);
        return;
      }
    } catch (error) {
      if (!signal.aborted) options.logger.debug({ err: errorMessage(error) }, "role check failed; retrying");
    }
  }
}

/** The label the worker agent puts on every task container (docker's). */
export const taskContainerLabel = "com.docker.swarm.task.id";

/**
 * Removes the containers of swarm tasks, as `swarm leave` does in docker: a node outside a
 * swarm runs none. A container that cannot be removed is logged and the rest go on; the
 * count of failures is returned so that the caller can say so.
 */
export async function removeTaskContainers(containers: Pick<ContainerService, "list" | "remove">, logger: Logger): Promise<number> {
  let failures = 0;
  for (const info of containers.list({ all: true })) {
    if (info.record.labels[taskContainerLabel] === undefined) continue;
    try {
      await containers.remove(info.record.id, { force: true });
    } catch (error) {
      failures += 1;
      logger.error({ err: errorMessage(error), containerId: info.record.id }, "could not remove a task container after leaving the swarm");
    }
  }
  return failures;
}
