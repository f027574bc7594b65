import { FailedPreconditionError, InvalidArgumentError, NotFoundError, ResourceExhaustedError } from "../../common/errors.js";
import { formatIpv4, isTerminalTaskState, parseIpv4Cidr, vniMax, vniMin, type Network, type NetworkSpec, type ServiceSpec, type Task } from "../objects/index.js";
import type { ReadTx, WriteTx } from "../store/index.js";

/** The cluster pool when the cluster spec names none (Docker's default-addr-pool is 10.0.0.0/8; swarm overlay users expect a /12). */
export const defaultAddressPool = "10.240.0.0/12";
/** Every overlay network gets a subnet of this size from the pool (Docker's default-addr-pool-mask-length). */
export const networkSubnetPrefixLength = 24;
/** The built-in routing-mesh network's name. */
export const ingressNetworkName = "ingress";
/** Most networks a cluster may hold: bounds every per-network table on managers and workers. */
export const networksMax = 4_096;

/** The pool the cluster's networks come from. */
export function clusterAddressPool(tx: ReadTx): string {
  const [cluster] = tx.find("cluster");
  return cluster?.spec.defaultAddressPool ?? defaultAddressPool;
}

/** The first /24 of `pool` no existing network uses, and the VNI that goes with it. */
export function pickNetworkSubnet(pool: string, networks: readonly Network[]): { subnet: string; vni: number } {
  const parsed = parseIpv4Cidr(pool);
  if (parsed === undefined || parsed.prefixLength > networkSubnetPrefixLength) {
    throw new InvalidArgumentError(`address pool "${pool}" must be an IPv4 CIDR of /${networkSubnetPrefixLength} or larger`);
  }
  const subnetSize = 2 ** (32 - networkSubnetPrefixLength);
  const base = parsed.address - (parsed.address % 2 ** (32 - parsed.prefixLength));
  const count = 2 ** (networkSubnetPrefixLength - parsed.prefixLength);
  const taken = new Set(networks.map((network) => network.subnet));
  const vnis = new Set(networks.map((network) => network.vni));
  for (let index = 0; index < count; index += 1) {
    const subnet = `${formatIpv4(base + index * subnetSize)}/${networkSubnetPrefixLength}`;
    const vni = vniMin + index;
    if (!taken.has(subnet) && !vnis.has(vni) && vni <= vniMax) return { subnet, vni };
  }
  throw new ResourceExhaustedError(`address pool ${pool} has no free /${networkSubnetPrefixLength} left for another network; remove unused networks`);
}

/** Creates a network with its subnet and VNI in one write, so two creations never get the same subnet. */
export function createNetworkInTx(tx: WriteTx, id: string, spec: NetworkSpec): Network {
  const networks = tx.find("network");
  if (networks.length >= networksMax) throw new ResourceExhaustedError(`the cluster already has ${networksMax} networks; remove unused ones`);
  if (networks.some((network) => network.spec.name === spec.name)) {
    throw new FailedPreconditionError(`a network named "${spec.name}" already exists; choose another name`);
  }
  if (spec.ingress && networks.some((network) => network.spec.ingress)) {
    throw new FailedPreconditionError("the cluster already has an ingress network; remove it first");
  }
  const { subnet, vni } = pickNetworkSubnet(clusterAddressPool(tx), networks);
  return tx.create("network", { id, spec, subnet, vni });
}

/** Resolves a service's network target (id or name) to the network, undefined when there is none. */
export function resolveNetwork(tx: ReadTx, target: string): Network | undefined {
  return tx.get("network", target) ?? tx.find("network", { by: "name", name: target })[0];
}

/** Whether a spec publishes any port through the routing mesh. */
export function usesIngress(spec: Pick<ServiceSpec, "endpointSpec">): boolean {
  return spec.endpointSpec.ports.some((port) => port.publishMode === "ingress");
}

/**
 * Checks what a service spec asks of the network layer before it is written: every
 * network it names exists and is not the ingress network (that one is attached through
 * published ports), and no other service publishes the same ingress port.
 */
export function checkServiceNetworking(tx: ReadTx, spec: ServiceSpec, serviceId: string | undefined): void {
  for (const attachment of spec.taskTemplate.networks) {
    const network = resolveNetwork(tx, attachment.target);
    if (network === undefined) throw new NotFoundError(`network "${attachment.target}" not found; create it with: shoal network create -d overlay ${attachment.target}`);
    if (network.spec.ingress) throw new InvalidArgumentError(`network "${attachment.target}" is the ingress network; publish a port instead of attaching to it`);
  }
  for (const port of spec.endpointSpec.ports) {
    if (port.publishMode !== "ingress" || port.publishedPort === 0) continue;
    const holder = tx.find("service").find(
      (other) =>
        other.id !== serviceId &&
        (other.endpoint?.publishedPorts.some((taken) => taken.publishedPort === port.publishedPort && taken.protocol === port.protocol) === true ||
          other.spec.endpointSpec.ports.some(
            (taken) => taken.publishMode === "ingress" && taken.publishedPort === port.publishedPort && taken.protocol === port.protocol,
          )),
    );
    if (holder !== undefined) {
      throw new FailedPreconditionError(`port ${port.publishedPort}/${port.protocol} is already published by service ${holder.spec.name}; choose another published port`);
    }
  }
}

/** Removes a network no service uses; FailedPreconditionError names the services that still do. */
export function removeNetworkInTx(tx: WriteTx, reference: string): Network {
  const network = tx.lookup("network", reference);
  const users = tx.find("service").filter((service) =>
    network.spec.ingress
      ? usesIngress(service.spec)
      : service.spec.taskTemplate.networks.some((attachment) => attachment.target === network.id || attachment.target === network.spec.name),
  );
  if (users.length > 0) {
    const names = users.slice(0, 5).map((service) => service.spec.name);
    throw new FailedPreconditionError(`network ${network.spec.name} is in use by service(s) ${names.join(", ")}; remove them or detach them first`);
  }
  const attached = tx.find("task").filter((task) => task.networkAttachments?.some((attachment) => attachment.networkId === network.id) === true);
  if (attached.some((task) => !isAddressReleased(task))) {
    throw new FailedPreconditionError(`network ${network.spec.name} still has running tasks attached; wait for them to stop`);
  }
  tx.delete("network", network.id);
  return network;
}

/** A task gives its addresses back once it has stopped for good. */
export function isAddressReleased(task: Task): boolean {
  return isTerminalTaskState(task.status.state);
}

/**
 * Whether a task has what the worker needs from the network layer: it needs no network,
 * or the allocator has written its attachments. Workers are only sent ready tasks.
 */
export function networkAttachmentsReady(task: Task): boolean {
  if (task.networkAttachments !== undefined) return true;
  return task.spec.networks.length === 0 && !task.endpoint.ports.some((port) => port.publishMode === "ingress");
}
