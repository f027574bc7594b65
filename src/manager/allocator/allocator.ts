import { randomBytes } from "node:crypto";

import { systemClock, type Clock } from "../../common/clock.js";
import { errorMessage, ResourceExhaustedError } from "../../common/errors.js";
import type { Logger } from "../../common/logger.js";
import { createIdGenerator, type Network, type NetworkAttachment, type PublishedPort, type Service, type ServiceEndpointState, type Task } from "../objects/index.js";
import { runReconcileLoop, type Reconciler } from "../orchestrator/index.js";
import type { MemoryStore, ReadTx, StoreObjectEvent, WriteTx } from "../store/index.js";
import { AddressPool } from "./address-pool.js";
import { createNetworkInTx, ingressNetworkName, isAddressReleased, resolveNetwork, usesIngress } from "./networks.js";

/** Ingress ports asked as 0 get one from this range (Docker's default dynamic range for swarm). */
export const dynamicPortMin = 30_000;
export const dynamicPortMax = 32_767;
/** Most objects one reconcile pass writes in one store transaction. */
export const allocationsPerTransactionMax = 100;

export interface AllocatorOptions {
  store: MemoryStore;
  logger: Logger;
  clock?: Clock;
  newId?: () => string;
}

export interface PoolUsage {
  networkId: string;
  subnet: string;
  used: number;
  size: number;
}

type Held = { networkId: string; address: string }[];

/**
 * The allocator (swarmkit manager/allocator): gives services their VIPs and dynamic
 * published ports and tasks their addresses on the networks they attach to, through store
 * writes, and takes them back when a task stops for good or a service or network goes.
 * In-memory pools mirror what the store says is held; every full pass rebuilds them from
 * the store, so a lost write race or a new leader can never leak or double-hand an address.
 */
export class Allocator implements Reconciler {
  readonly #store: MemoryStore;
  readonly #logger: Logger;
  readonly #clock: Clock;
  readonly #newId: () => string;
  #pools = new Map<string, AddressPool>();
  /** Owner (service or task id) -> what it holds. */
  #held = new Map<string, Held>();
  /** Service id -> the published ports ("tcp/8080") it holds. */
  #ports = new Map<string, Set<string>>();
  readonly #dirtyTasks = new Set<string>();
  readonly #dirtyServices = new Set<string>();
  #networksDirty = false;
  #nodesDirty = false;

  constructor(options: AllocatorOptions) {
    this.#store = options.store;
    this.#logger = options.logger.child({ component: "allocator" });
    this.#clock = options.clock ?? systemClock;
    this.#newId = options.newId ?? createIdGenerator((size) => randomBytes(size));
  }

  /** Allocates until `signal` fires (a leader-only component). */
  async run(signal: AbortSignal): Promise<void> {
    await runReconcileLoop({
      component: "allocator",
      store: this.#store,
      clock: this.#clock,
      logger: this.#logger,
      reconciler: this,
      filter: (event) => event.kind === "task" || event.kind === "service" || event.kind === "network" || (event.kind === "node" && event.type !== "updated"),
      signal,
    });
  }

  /** How full each network's pool is (for tests and diagnostics). */
  usage(): PoolUsage[] {
    return [...this.#pools].map(([networkId, pool]) => ({ networkId, subnet: pool.subnet, used: pool.usedCount, size: pool.size }));
  }

  observe(event: StoreObjectEvent): void {
    switch (event.kind) {
      case "task":
        this.#dirtyTasks.add(event.object.id);
        return;
      case "service":
        this.#dirtyServices.add(event.object.id);
        return;
      case "network":
        this.#networksDirty = true;
        return;
      case "node":
        if (event.type !== "updated") this.#nodesDirty = true;
        return;
      case "cluster":
        return;
    }
  }

  async reconcileAll(signal: AbortSignal): Promise<number> {
    this.#dirtyTasks.clear();
    this.#dirtyServices.clear();
    this.#networksDirty = false;
    this.#nodesDirty = false;
    if (this.#store.view((tx) => !tx.find("network").some((network) => network.spec.ingress))) {
      await this.#store.update((tx) => {
        if (tx.find("network").some((network) => network.spec.ingress)) return;
        createNetworkInTx(tx, this.#newId(), { name: ingressNetworkName, labels: {}, driver: "overlay", ingress: true });
      }, { signal });
      this.#logger.info("created the ingress network");
    }
    const { services, tasks } = this.#store.view((tx) => {
      this.#rebuild(tx);
      return { services: tx.find("service").map((service) => service.id), tasks: tx.find("task").map((task) => task.id) };
    });
    await this.#allocate(services, tasks, signal);
    await this.#allocateNodes(signal);
    return services.length + tasks.length;
  }

  async reconcileDirty(signal: AbortSignal): Promise<number> {
    if (this.#networksDirty) return this.reconcileAll(signal);
    const services = [...this.#dirtyServices];
    const tasks = [...this.#dirtyTasks];
    this.#dirtyServices.clear();
    this.#dirtyTasks.clear();
    await this.#allocate(services, tasks, signal);
    if (this.#nodesDirty) {
      this.#nodesDirty = false;
      await this.#allocateNodes(signal);
    }
    return services.length + tasks.length;
  }

  /** Gives every node an address on the ingress network (the routing mesh's source) and frees removed nodes' ones. */
  async #allocateNodes(signal: AbortSignal): Promise<void> {
    await this.#store.update((tx) => {
      const ingress = tx.find("network").find((network) => network.spec.ingress);
      const pool = ingress === undefined ? undefined : this.#pools.get(ingress.id);
      if (ingress === undefined || pool === undefined) return;
      const nodeIds = new Set(tx.find("node").map((node) => node.id));
      const current = ingress.nodeAddresses ?? [];
      const kept = current.filter((item) => nodeIds.has(item.nodeId));
      for (const item of current) {
        if (!nodeIds.has(item.nodeId)) this.#release(nodeOwner(item.nodeId));
      }
      const next = [...kept];
      for (const nodeId of nodeIds) {
        if (next.some((item) => item.nodeId === nodeId)) continue;
        const address = pool.allocate();
        this.#held.set(nodeOwner(nodeId), [{ networkId: ingress.id, address }]);
        next.push({ nodeId, address });
      }
      if (next.length !== current.length || kept.length !== current.length) tx.update("network", { ...ingress, nodeAddresses: next });
    }, { signal });
  }

  /** Re-reads every pool from the store: networks, VIPs and ports of services, addresses of live tasks. */
  #rebuild(tx: ReadTx): void {
    this.#pools = new Map(tx.find("network").map((network) => [network.id, new AddressPool(network.subnet)]));
    this.#held = new Map();
    this.#ports = new Map();
    for (const service of tx.find("service")) {
      this.#claim(service.id, (service.endpoint?.virtualIps ?? []).map((vip) => ({ networkId: vip.networkId, address: vip.address })));
      this.#ports.set(service.id, new Set((service.endpoint?.publishedPorts ?? []).map(portKey)));
    }
    for (const task of tx.find("task")) {
      if (!isAddressReleased(task)) this.#claim(task.id, task.networkAttachments ?? []);
    }
    for (const network of tx.find("network")) {
      for (const item of network.nodeAddresses ?? []) this.#claim(nodeOwner(item.nodeId), [{ networkId: network.id, address: item.address }]);
    }
  }

  #claim(owner: string, held: Held): void {
    const kept: Held = [];
    for (const item of held) {
      const pool = this.#pools.get(item.networkId);
      if (pool?.claim(item.address) === true) kept.push(item);
      else this.#logger.warn({ owner, networkId: item.networkId, address: item.address }, "stored address is outside its network or held twice; not counting it");
    }
    if (kept.length > 0) this.#held.set(owner, kept);
  }

  #release(owner: string): void {
    for (const item of this.#held.get(owner) ?? []) this.#pools.get(item.networkId)?.release(item.address);
    this.#held.delete(owner);
  }

  async #allocate(serviceIds: readonly string[], taskIds: readonly string[], signal: AbortSignal): Promise<void> {
    const owners = [...serviceIds.map((id) => ({ kind: "service" as const, id })), ...taskIds.map((id) => ({ kind: "task" as const, id }))];
    for (let start = 0; start < owners.length; start += allocationsPerTransactionMax) {
      const chunk = owners.slice(start, start + allocationsPerTransactionMax);
      await this.#store.update((tx) => {
        for (const owner of chunk) {
          if (owner.kind === "service") this.#allocateService(tx, owner.id);
          else this.#allocateTask(tx, owner.id);
        }
      }, { signal });
    }
  }

  #allocateService(tx: WriteTx, serviceId: string): void {
    const service = tx.get("service", serviceId);
    if (service === undefined) {
      this.#release(serviceId);
      this.#ports.delete(serviceId);
      return;
    }
    const wanted = serviceNetworks(tx, service);
    const current = service.endpoint ?? { virtualIps: [], publishedPorts: [] };
    const keep = current.virtualIps.filter((vip) => wanted.some((network) => network.id === vip.networkId));
    for (const vip of current.virtualIps) if (!keep.includes(vip)) this.#pools.get(vip.networkId)?.release(vip.address);
    const virtualIps = [...keep];
    for (const network of wanted) {
      if (virtualIps.some((vip) => vip.networkId === network.id)) continue;
      const pool = this.#pools.get(network.id);
      if (pool === undefined) continue;
      virtualIps.push({ networkId: network.id, address: pool.allocate() });
    }
    this.#held.set(serviceId, virtualIps.map((vip) => ({ networkId: vip.networkId, address: vip.address })));
    const publishedPorts = this.#publishedPorts(service, current.publishedPorts);
    const endpoint: ServiceEndpointState = { virtualIps, publishedPorts };
    if (JSON.stringify(endpoint) !== JSON.stringify(current)) tx.update("service", { ...service, endpoint });
  }

  /** Ingress-mode ports with 0 replaced by a free one from the dynamic range; keeps what the service already got. */
  #publishedPorts(service: Service, current: readonly PublishedPort[]): PublishedPort[] {
    const result: PublishedPort[] = [];
    const held = new Set<string>();
    this.#ports.set(service.id, held);
    for (const port of service.spec.endpointSpec.ports) {
      if (port.publishMode !== "ingress" || port.protocol === "sctp") continue;
      const protocol = port.protocol;
      const previous = current.find((item) => item.targetPort === port.targetPort && item.protocol === protocol && (port.publishedPort === 0 || item.publishedPort === port.publishedPort));
      let publishedPort = previous?.publishedPort ?? port.publishedPort;
      if (publishedPort === 0) publishedPort = this.#dynamicPort(protocol);
      held.add(portKey({ protocol, publishedPort }));
      result.push({ protocol, publishedPort, targetPort: port.targetPort });
    }
    return result;
  }

  #dynamicPort(protocol: "tcp" | "udp"): number {
    const taken = new Set<string>();
    for (const ports of this.#ports.values()) for (const port of ports) taken.add(port);
    for (let port = dynamicPortMin; port <= dynamicPortMax; port += 1) {
      if (!taken.has(portKey({ protocol, publishedPort: port }))) return port;
    }
    throw new ResourceExhaustedError(`no free published port left between ${dynamicPortMin} and ${dynamicPortMax}; remove services or publish fixed ports`);
  }

  #allocateTask(tx: WriteTx, taskId: string): void {
    const task = tx.get("task", taskId);
    if (task === undefined || isAddressReleased(task)) {
      this.#release(taskId);
      return;
    }
    if (task.networkAttachments !== undefined) return;
    const networks = taskNetworks(tx, task);
    if (networks === undefined) {
      this.#logger.warn({ taskId }, "a network the task attaches to is gone; leaving it unallocated");
      return;
    }
    if (networks.length === 0) return;
    const attachments: NetworkAttachment[] = [];
    for (const network of networks) {
      const pool = this.#pools.get(network.id);
      if (pool === undefined) return;
      attachments.push({ networkId: network.id, networkName: network.spec.name, subnet: network.subnet, vni: network.vni, address: pool.allocate() });
    }
    this.#held.set(taskId, attachments.map((item) => ({ networkId: item.networkId, address: item.address })));
    try {
      tx.update("task", { ...task, networkAttachments: attachments });
    } catch (error) {
      this.#release(taskId);
      this.#logger.warn({ taskId, err: errorMessage(error) }, "could not record the task's addresses");
      throw error;
    }
  }
}

function nodeOwner(nodeId: string): string {
  return `node/${nodeId}`;
}

function portKey(port: Pick<PublishedPort, "protocol" | "publishedPort">): string {
  return `${port.protocol}/${port.publishedPort}`;
}

/** The networks a service holds a VIP on: its attached networks in vip mode, and ingress when it publishes through the mesh. */
function serviceNetworks(tx: ReadTx, service: Service): Network[] {
  const networks: Network[] = [];
  if (service.spec.endpointSpec.mode === "vip") {
    for (const attachment of service.spec.taskTemplate.networks) {
      const network = resolveNetwork(tx, attachment.target);
      if (network !== undefined && !networks.includes(network)) networks.push(network);
    }
  }
  if (usesIngress(service.spec)) {
    const ingress = tx.find("network").find((network) => network.spec.ingress);
    if (ingress !== undefined) networks.push(ingress);
  }
  return networks;
}

/** The networks a task attaches to, or undefined when one of them does not exist (any more). */
function taskNetworks(tx: ReadTx, task: Task): Network[] | undefined {
  const networks: Network[] = [];
  for (const attachment of task.spec.networks) {
    const network = resolveNetwork(tx, attachment.target);
    if (network === undefined) return undefined;
    if (!networks.includes(network)) networks.push(network);
  }
  if (task.endpoint.ports.some((port) => port.publishMode === "ingress")) {
    const ingress = tx.find("network").find((network) => network.spec.ingress);
    if (ingress === undefined) return undefined;
    networks.push(ingress);
  }
  return networks;
}
