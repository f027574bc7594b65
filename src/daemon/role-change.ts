import { CancelledError, FailedPreconditionError, UnavailableError, errorMessage } from "../common/errors.js";
import type { Logger } from "../common/logger.js";
import type { ContainerService } from "../engine/index.js";
import { renewNodeCertificate, type NodeCredentials } from "../manager/ca/index.js";
import { hostOfAddress, type Manager } from "../manager/manager/index.js";
import type { NodeRole } from "../manager/objects/index.js";
import type { TlsMaterial } from "../rpc/tls/index.js";

/**
 * After a role change that could not be carried out (no manager answered, the CA's replica
 * did not have the new role yet, raft refused), the next attempt waits this long, doubling
 * up to roleRetryDelayMsMax. Role changes are otherwise driven by events, never by a timer.
 */
export const roleRetryDelayMsMin = 250;
export const roleRetryDelayMsMax = 4_000;

/** The retry delay after `failures` consecutive failed attempts (0 for none). */
export function roleRetryDelayMs(failures: number): number {
  if (failures <= 0) return 0;
  return Math.min(roleRetryDelayMsMax, roleRetryDelayMsMin * 2 ** Math.min(failures - 1, 16));
}

/**
 * The latest role the cluster wants for this node, as the dispatcher's session messages
 * tell the agent; waiters wake when it is set.
 */
export class DesiredRole {
  #role: NodeRole | null = null;
  readonly #waiters = new Set<() => void>();

  set(role: NodeRole): void {
    this.#role = role;
    for (const wake of [...this.#waiters]) wake();
  }

  /** Resolves once the desired role is `role` (at once when it already is); CancelledError on abort. */
  waitFor(role: NodeRole, signal: AbortSignal): Promise<void> {
    if (this.#role === role) return Promise.resolve();
    if (signal.aborted) return Promise.reject(new CancelledError("stopped waiting for a role change"));
    return new Promise((resolve, reject) => {
      const finish = (): void => {
        this.#waiters.delete(check);
        signal.removeEventListener("abort", onAbort);
      };
      const check = (): void => {
        if (this.#role !== role) return;
        finish();
        resolve();
      };
      const onAbort = (): void => {
        finish();
        reject(new CancelledError("stopped waiting for a role change"));
      };
      this.#waiters.add(check);
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }
}

/** Whether `node demote` reached this manager: its Node's spec now says worker. */
export function managerDemoted(manager: Pick<Manager, "store" | "nodeId">): boolean {
  const node = manager.store.view((tx) => tx.get("node", manager.nodeId));
  return node?.spec.role === "worker";
}

/**
 * Resolves once this manager's store replica says it was demoted (at once when it already
 * does), reacting to the store's change events. CancelledError when `signal` fires first;
 * the watch's own failure (it fell behind) is thrown as it is.
 */
export async function waitForDemotion(manager: Pick<Manager, "store" | "nodeId">, signal: AbortSignal): Promise<void> {
  const { result, events } = manager.store.viewAndWatch((tx) => tx.get("node", manager.nodeId)?.spec.role === "worker", {
    signal,
    filter: (event) => event.type === "restored" || (event.type !== "commit" && event.kind === "node" && event.object.id === manager.nodeId),
  });
  if (result) {
    await events.return?.();
    return;
  }
  for await (const _event of events) {
    if (managerDemoted(manager)) return;
  }
  throw new CancelledError("stopped watching for a demotion");
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

/**
 * A promoted worker's manager credentials: one renewal, first from the manager it holds its
 * session with (the leader, whose store the promotion was committed to). UnavailableError
 * when the CA still issued a worker certificate (a lagging replica answered): try again later.
 */
export async function workerPromotion(options: {
  managers: readonly string[];
  current: TlsMaterial;
  host: string;
  signal: AbortSignal;
}): Promise<Promotion> {
  const answer = await renewFromFirstManager(options);
  if (answer.credentials.identity.role !== "manager") {
    throw new UnavailableError(`the cluster wants this node as a manager, but the CA at ${answer.address} still issued a worker certificate`);
  }
  return answer;
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
 * Waits for `wake` (an event saying the role changed), then runs `probe`, which carries out
 * what the change needs before it can be applied (e.g. fetching a certificate); its result
 * goes to `onChange` and the watch ends. A failing `wake` or `probe` is logged and retried
 * after roleRetryDelayMs, growing with each failure; `failures` counts earlier failed role
 * changes, so that a change that keeps failing is not retried in a tight loop either.
 */
export async function watchRole<T>(options: {
  wake: (signal: AbortSignal) => Promise<void>;
  probe: (signal: AbortSignal) => Promise<T> | T;
  onChange: (change: T) => void;
  failures: number;
  sleep: (ms: number, options: { signal: AbortSignal }) => Promise<void>;
  logger: Logger;
  signal: AbortSignal;
}): Promise<void> {
  const { signal } = options;
  let failures = options.failures;
  while (!signal.aborted) {
    try {
      const delayMs = roleRetryDelayMs(failures);
      if (delayMs > 0) await options.sleep(delayMs, { signal });
      await options.wake(signal);
      const change = await options.probe(signal);
      options.onChange(change);
      return;
    } catch (error) {
      if (signal.aborted) return;
      failures += 1;
      options.logger.warn({ err: errorMessage(error), retryInMs: roleRetryDelayMs(failures) }, "could not carry out a role change; retrying");
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
