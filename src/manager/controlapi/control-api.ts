import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";

import {
  AlreadyExistsError,
  ConflictError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
} from "../../common/errors.js";
import { systemClock, type Clock } from "../../common/clock.js";
import type { Logger } from "../../common/logger.js";
import { createIdGenerator, parseClusterSpec, parseServiceSpec } from "../objects/index.js";
import type { Cluster, JoinTokens, Network, Node, Service, ServiceSpec, Task } from "../objects/index.js";
import type { MemoryStore, ObjectKind, ReadTx } from "../store/index.js";
import { nodeMatches, resolveReferences, serviceMatches, taskMatches } from "./filters.js";
import { checkServiceNetworking } from "../allocator/index.js";
import { NetworkControl } from "./networks.js";
import { mergeNodeSpec } from "./node-spec.js";
import type {
  ControlApi,
  InitClusterInput,
  NodeFilters,
  ServiceFilters,
  ServiceStatus,
  ServiceWithStatus,
  TaskFilters,
  UpdateServiceOptions,
} from "./types.js";

export interface ControlApiOptions {
  store: MemoryStore;
  logger: Logger;
  /** Makes new object ids; random 128-bit ids (createIdGenerator over crypto) by default. */
  newId?: () => string;
  /** Stamps the start of a requested rollback; systemClock by default. */
  clock?: Clock;
}

type SignalOption = { signal?: AbortSignal };

function signalOf(options: SignalOption | undefined): SignalOption {
  return options?.signal === undefined ? {} : { signal: options.signal };
}

function outOfSequence(kind: ObjectKind, id: string, stored: number, given: number): ConflictError {
  return new ConflictError(
    `update out of sequence: ${kind} ${id} is at version ${stored} but the update was based on version ${given}; inspect it again and retry`,
  );
}

function checkVersion(version: number): void {
  if (!Number.isSafeInteger(version) || version < 0) throw new InvalidArgumentError(`version must be a whole number >= 0, got ${version}`);
}

/** Creates the control API over a store (see ControlApi for the contract). */
export function createControlApi(options: ControlApiOptions): ControlApi {
  return new ControlApiImpl(options);
}

class ControlApiImpl implements ControlApi {
  readonly #store: MemoryStore;
  readonly #logger: Logger;
  readonly #newId: () => string;
  readonly #clock: Clock;
  readonly #networks: NetworkControl;

  constructor(options: ControlApiOptions) {
    this.#clock = options.clock ?? systemClock;
    this.#store = options.store;
    this.#newId = options.newId ?? createIdGenerator((size) => randomBytes(size));
    this.#logger = options.logger.child({ component: "controlapi" });
    this.#networks = new NetworkControl({ store: this.#store, logger: this.#logger, newId: this.#newId });
  }

  async createService(input: unknown, options?: SignalOption): Promise<Service> {
    const spec = parseServiceSpec(input, "spec");
    const id = await this.#store.update((tx) => {
      if (tx.find("service", { by: "name", name: spec.name }).length > 0) {
        throw new AlreadyExistsError(`a service named "${spec.name}" already exists; choose another name or update that service`);
      }
      checkServiceNetworking(tx, spec, undefined);
      return tx.create("service", { id: this.#newId(), spec, specVersion: 1 }).id;
    }, signalOf(options));
    this.#logger.info({ serviceId: id, name: spec.name }, "service created");
    return this.getService(id);
  }

  getService(reference: string): Service {
    return this.#store.view((tx) => tx.lookup("service", reference));
  }

  serviceStatus(service: Service): ServiceStatus {
    return this.#store.view((tx) => computeServiceStatus(tx, service));
  }

  listServices(filters: ServiceFilters = {}, options: { status?: boolean } = {}): ServiceWithStatus[] {
    return this.#store.view((tx) =>
      tx
        .find("service")
        .filter((service) => serviceMatches(service, filters))
        .sort(byCreation)
        .map((service) => (options.status === true ? { service, status: computeServiceStatus(tx, service) } : { service })),
    );
  }

  async updateService(reference: string, version: number, input: unknown, options: UpdateServiceOptions = {}): Promise<Service> {
    checkVersion(version);
    const current = this.getService(reference);
    const spec = options.rollback === "previous" ? previousSpecOf(current) : parseServiceSpec(input, "spec");
    checkServiceChange(current.spec, spec);
    await this.#store.update((tx) => {
      const stored = tx.get("service", current.id);
      if (stored === undefined) throw new NotFoundError(`service ${current.id} was removed`);
      if (stored.meta.version !== version) throw outOfSequence("service", stored.id, stored.meta.version, version);
      checkServiceNetworking(tx, spec, stored.id);
      const changed = JSON.stringify(stored.spec) !== JSON.stringify(spec);
      const { updateStatus: _previousStatus, ...rest } = stored;
      const next: Service = { ...rest, spec, previousSpec: stored.spec, specVersion: changed ? stored.specVersion + 1 : stored.specVersion };
      // As swarmkit's controlapi: a new spec starts a fresh update (no status yet); a requested
      // rollback is marked so the update orchestrator rolls back with the rollback config.
      if (options.rollback === "previous") {
        next.updateStatus = { state: "rollback_started", startedAt: this.#clock.now(), completedAt: 0, message: "manually requested rollback" };
      }
      tx.update("service", next);
    }, signalOf(options));
    this.#logger.info({ serviceId: current.id, rollback: options.rollback === "previous" }, "service updated");
    return this.getService(current.id);
  }

  async removeService(reference: string, options?: SignalOption): Promise<void> {
    const service = this.getService(reference);
    await this.#store.update((tx) => tx.delete("service", service.id), signalOf(options));
    this.#logger.info({ serviceId: service.id, name: service.spec.name }, "service removed");
  }

  createNetwork(input: unknown, options?: SignalOption): Promise<Network> {
    return this.#networks.create(input, signalOf(options));
  }

  getNetwork(reference: string): Network {
    return this.#networks.get(reference);
  }

  listNetworks(): Network[] {
    return this.#networks.list();
  }

  removeNetwork(reference: string, options?: SignalOption): Promise<void> {
    return this.#networks.remove(reference, signalOf(options));
  }

  getNode(reference: string): Node {
    return this.#store.view((tx) => tx.lookup("node", reference));
  }

  listNodes(filters: NodeFilters = {}): Node[] {
    return this.#store.view((tx) => tx.find("node").filter((node) => nodeMatches(node, filters)).sort(byCreation));
  }

  async updateNode(reference: string, version: number, input: unknown, options?: SignalOption): Promise<Node> {
    checkVersion(version);
    const current = this.getNode(reference);
    const spec = mergeNodeSpec(current.spec, input);
    await this.#store.update((tx) => {
      const stored = tx.get("node", current.id);
      if (stored === undefined) throw new NotFoundError(`node ${current.id} was removed`);
      if (stored.meta.version !== version) throw outOfSequence("node", stored.id, stored.meta.version, version);
      if (stored.spec.role === "manager" && spec.role === "worker" && managerCount(tx) <= 1) {
        throw new FailedPreconditionError(`node ${stored.id} is the last manager of the swarm: promote another node before demoting it`);
      }
      tx.update("node", { ...stored, spec });
    }, signalOf(options));
    this.#logger.info({ nodeId: current.id, role: spec.role, availability: spec.availability }, "node updated");
    return this.getNode(current.id);
  }

  async removeNode(reference: string, options: { force?: boolean; signal?: AbortSignal } = {}): Promise<void> {
    const node = this.getNode(reference);
    if (node.spec.role === "manager") {
      throw new FailedPreconditionError(
        `node ${node.id} is a cluster manager and is a member of the raft cluster. It must be demoted to worker before removal`,
      );
    }
    if (node.status.state !== "down" && options.force !== true) {
      throw new FailedPreconditionError(`node ${node.id} is not down and can't be removed: stop it first or use --force`);
    }
    await this.#store.update((tx) => tx.delete("node", node.id), signalOf(options));
    this.#logger.info({ nodeId: node.id, forced: options.force === true }, "node removed");
  }

  getTask(reference: string): Task {
    return this.#store.view((tx) => tx.lookup("task", reference));
  }

  listTasks(filters: TaskFilters = {}): Task[] {
    return this.#store.view((tx) => {
      const resolved = {
        filters,
        serviceIds: resolveReferences(tx, "service", filters.service),
        nodeIds: resolveReferences(tx, "node", filters.node),
      };
      const candidates = resolved.serviceIds === undefined ? tx.find("task") : [...resolved.serviceIds].flatMap((serviceId) => tx.find("task", { by: "serviceId", serviceId }));
      return candidates.filter((task) => taskMatches(task, tx.get("service", task.serviceId), resolved)).sort(byCreation);
    });
  }

  getCluster(): Cluster {
    return this.#store.view((tx) => onlyCluster(tx));
  }

  async updateCluster(version: number, input: unknown, options?: SignalOption): Promise<Cluster> {
    checkVersion(version);
    const current = this.getCluster();
    if (typeof input !== "object" || input === null || Array.isArray(input)) throw new InvalidArgumentError("spec: must be an object");
    const spec = parseClusterSpec({ ...current.spec, ...input }, "spec");
    await this.#store.update((tx) => {
      const stored = onlyCluster(tx);
      if (stored.meta.version !== version) throw outOfSequence("cluster", stored.id, stored.meta.version, version);
      tx.update("cluster", { ...stored, spec });
    }, signalOf(options));
    return this.getCluster();
  }

  async setJoinTokens(tokens: JoinTokens, options?: SignalOption): Promise<Cluster> {
    await this.#store.update((tx) => {
      const stored = onlyCluster(tx);
      tx.update("cluster", { ...stored, joinTokens: { ...tokens } });
    }, signalOf(options));
    return this.getCluster();
  }

  async initCluster(input: InitClusterInput, options?: SignalOption): Promise<Cluster> {
    const spec = parseClusterSpec(input.spec, "spec");
    await this.#store.update((tx) => {
      if (tx.find("cluster").length > 0) throw new AlreadyExistsError("this node is already part of a swarm: leave it first");
      const cluster: Omit<Cluster, "meta"> = { id: input.clusterId, spec, joinTokens: { ...input.joinTokens } };
      if (input.rootCa !== undefined) cluster.rootCa = { ...input.rootCa };
      tx.create("cluster", cluster);
      tx.create("node", input.node);
    }, signalOf(options));
    this.#logger.info({ clusterId: input.clusterId, nodeId: input.node.id }, "swarm initialised");
    return this.getCluster();
  }
}

function byCreation(a: { id: string; meta: { createdAt: number } }, b: { id: string; meta: { createdAt: number } }): number {
  return a.meta.createdAt - b.meta.createdAt || a.id.localeCompare(b.id);
}

function previousSpecOf(service: Service): ServiceSpec {
  if (service.previousSpec === undefined) {
    throw new FailedPreconditionError(`service ${service.spec.name} does not have a previous spec to roll back to`);
  }
  return service.previousSpec;
}

function checkServiceChange(current: ServiceSpec, next: ServiceSpec): void {
  if (current.name !== next.name) throw new InvalidArgumentError(`spec.name: renaming services is not supported (from "${current.name}" to "${next.name}")`);
  if (current.mode.type !== next.mode.type) {
    throw new InvalidArgumentError(`spec.mode: changing a service's mode from ${current.mode.type} to ${next.mode.type} is not supported; create a new service`);
  }
}

function managerCount(tx: ReadTx): number {
  return tx.find("node").filter((node) => node.spec.role === "manager").length;
}

function onlyCluster(tx: ReadTx): Cluster {
  const clusters = tx.find("cluster");
  assert.ok(clusters.length <= 1, "a swarm has one cluster object");
  const [cluster] = clusters;
  if (cluster === undefined) throw new NotFoundError("this node has no swarm cluster yet: run swarm init or swarm join");
  return cluster;
}

/**
 * Docker's ServiceStatus (moby daemon/cluster/services.go): running tasks on nodes that are
 * not down; desired = replicas, or for a global service the tasks meant to run.
 */
function computeServiceStatus(tx: ReadTx, service: Service): ServiceStatus {
  let runningTasks = 0;
  let completedTasks = 0;
  let globalDesired = 0;
  for (const task of tx.find("task", { by: "serviceId", serviceId: service.id })) {
    const nodeDown = task.nodeId !== "" && tx.get("node", task.nodeId)?.status.state === "down";
    if (task.status.state === "complete") completedTasks += 1;
    if (nodeDown) continue;
    if (task.status.state === "running") runningTasks += 1;
    if (task.desiredState === "running") globalDesired += 1;
  }
  const desiredTasks = service.spec.mode.type === "replicated" ? service.spec.mode.replicas : globalDesired;
  return { runningTasks, desiredTasks, completedTasks };
}
