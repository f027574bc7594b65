import { InvalidArgumentError } from "../../common/errors.js";
import { isAddressReleased } from "../allocator/index.js";
import { parseCidrText, taskStateRank, vniMax, type PublishedPort, type Task } from "../objects/index.js";
import { parseArray, parseBoolean, parseEnum, parseFields, parseInteger, parseString, required } from "../objects/parse.js";
import type { ReadTx } from "../store/index.js";

/** Largest encoded map one message may carry; a bigger cluster map is refused, not truncated. */
export const networkMapBytesMax = 16 * 1024 * 1024;
/** Most nodes, services and tasks the parser accepts. */
export const networkMapNodesMax = 10_000;
export const networkMapServicesMax = 10_000;
export const networkMapTasksMax = 100_000;
/**
 * A service label that keeps clients' source addresses on its ingress ports
 * (Kubernetes' externalTrafficPolicy: Local): each node sends published-port traffic only
 * to its own ready tasks, without rewriting the source; a node with none refuses it.
 */
export const trafficPolicyLabel = "shoal.network.traffic-policy";

/** A node gets at most one map per this interval, and a change within this long of the map before it. */
export const networkMapIntervalMs = 50;

export interface NetworkMapNode {
  nodeId: string;
  /** The node's underlay address (its session's source address). */
  addr: string;
  /** The node's own address on the ingress network ("10.240.0.9/24"), once allocated. */
  ingressAddress?: string;
}

export interface NetworkMapNetwork {
  id: string;
  name: string;
  vni: number;
  subnet: string;
  ingress: boolean;
}

export interface NetworkMapTask {
  id: string;
  nodeId: string;
  slot: number;
  /** Running, still wanted running, and healthy when it has a health check: may take new connections. */
  ready: boolean;
  addresses: { networkId: string; address: string }[];
}

export interface NetworkMapService {
  id: string;
  name: string;
  endpointMode: "vip" | "dnsrr";
  /** Aliases per network (network id -> names the service also answers to there). */
  virtualIps: { networkId: string; address: string }[];
  publishedPorts: PublishedPort[];
  /** "local": published ports reach only the receiving node's tasks and keep the client's address. */
  trafficPolicy: "cluster" | "local";
  /** Host-mode ports: published only on nodes that run a task. */
  hostPorts: PublishedPort[];
  tasks: NetworkMapTask[];
}

/** Everything a node's data plane needs from the cluster. */
export interface NetworkMap {
  nodes: NetworkMapNode[];
  networks: NetworkMapNetwork[];
  services: NetworkMapService[];
}

const runningRank = taskStateRank("running");

/** Whether a task may take new connections: a task leaves the balancer as soon as it is told to stop, before its stop signal. */
export function isTaskReady(task: Task): boolean {
  if (task.status.state !== "running") return false;
  if (taskStateRank(task.desiredState) > runningRank) return false;
  return task.status.health === undefined || task.status.health === "healthy";
}

function mapTask(task: Task): NetworkMapTask | undefined {
  if (task.networkAttachments === undefined || task.nodeId === "" || isAddressReleased(task)) return undefined;
  return {
    id: task.id,
    nodeId: task.nodeId,
    slot: task.slot,
    ready: isTaskReady(task),
    addresses: task.networkAttachments.map((attachment) => ({ networkId: attachment.networkId, address: attachment.address })),
  };
}

/** The map from one consistent view of the store. */
export function buildNetworkMap(tx: ReadTx): NetworkMap {
  const ingressAddresses = new Map((tx.find("network").find((network) => network.spec.ingress)?.nodeAddresses ?? []).map((item) => [item.nodeId, item.address]));
  const nodes = tx
    .find("node")
    .filter((node) => node.status.addr !== "" && node.status.state === "ready")
    .map((node): NetworkMapNode => {
      const ingressAddress = ingressAddresses.get(node.id);
      return ingressAddress === undefined ? { nodeId: node.id, addr: node.status.addr } : { nodeId: node.id, addr: node.status.addr, ingressAddress };
    })
    .sort((left, right) => left.nodeId.localeCompare(right.nodeId));
  const networks = tx
    .find("network")
    .map((network) => ({ id: network.id, name: network.spec.name, vni: network.vni, subnet: network.subnet, ingress: network.spec.ingress }))
    .sort((left, right) => left.vni - right.vni);
  const services = tx
    .find("service")
    .map((service): NetworkMapService => {
      const tasks = tx
        .find("task", { by: "serviceId", serviceId: service.id })
        .map(mapTask)
        .filter((task): task is NetworkMapTask => task !== undefined)
        .sort((left, right) => left.id.localeCompare(right.id));
      const hostPorts = service.spec.endpointSpec.ports
        .filter((port) => port.publishMode === "host" && port.publishedPort !== 0 && port.protocol !== "sctp")
        .map((port) => ({ protocol: port.protocol === "udp" ? ("udp" as const) : ("tcp" as const), publishedPort: port.publishedPort, targetPort: port.targetPort }));
      return {
        id: service.id,
        name: service.spec.name,
        endpointMode: service.spec.endpointSpec.mode,
        virtualIps: service.endpoint?.virtualIps.map((vip) => ({ ...vip })) ?? [],
        publishedPorts: service.endpoint?.publishedPorts.map((port) => ({ ...port })) ?? [],
        trafficPolicy: service.spec.labels[trafficPolicyLabel] === "local" ? "local" : "cluster",
        hostPorts,
        tasks,
      };
    })
    .filter((service) => service.tasks.length > 0 || service.virtualIps.length > 0)
    .sort((left, right) => left.id.localeCompare(right.id));
  return { nodes, networks, services };
}

export function encodeNetworkMap(map: NetworkMap): Buffer {
  const encoded = Buffer.from(JSON.stringify(map));
  if (encoded.byteLength > networkMapBytesMax) {
    throw new InvalidArgumentError(`the network map is ${encoded.byteLength} bytes, more than ${networkMapBytesMax}; the cluster has too many tasks on networks`);
  }
  return encoded;
}

const idText = { bytesMax: 64, allowEmpty: false, pattern: /^[a-z0-9]+$/u, patternText: "an object id" };
const port = (value: unknown, path: string): number => parseInteger(value, path, { min: 1, max: 65_535 });

function parsePorts(value: unknown, path: string): PublishedPort[] {
  return parseArray(value, path, 1_024, (item, at) => {
    const fields = parseFields(item, at, ["protocol", "publishedPort", "targetPort"]);
    return {
      protocol: required(fields, "protocol", at, (protocol, where) => parseEnum(protocol, where, ["tcp", "udp"] as const)),
      publishedPort: required(fields, "publishedPort", at, port),
      targetPort: required(fields, "targetPort", at, port),
    };
  });
}

function parseAddresses(value: unknown, path: string): { networkId: string; address: string }[] {
  return parseArray(value, path, 1_024, (item, at) => {
    const fields = parseFields(item, at, ["networkId", "address"]);
    return {
      networkId: required(fields, "networkId", at, (text, where) => parseString(text, where, idText)),
      address: required(fields, "address", at, parseCidrText),
    };
  });
}

function parseMapNetwork(value: unknown, path: string): NetworkMapNetwork {
  const fields = parseFields(value, path, ["id", "name", "vni", "subnet", "ingress"]);
  return {
    id: required(fields, "id", path, (item, at) => parseString(item, at, idText)),
    name: required(fields, "name", path, (item, at) => parseString(item, at, { bytesMax: 63, allowEmpty: false })),
    vni: required(fields, "vni", path, (item, at) => parseInteger(item, at, { min: 1, max: vniMax })),
    subnet: required(fields, "subnet", path, parseCidrText),
    ingress: required(fields, "ingress", path, parseBoolean),
  };
}

function parseMapTask(value: unknown, path: string): NetworkMapTask {
  const fields = parseFields(value, path, ["id", "nodeId", "slot", "ready", "addresses"]);
  return {
    id: required(fields, "id", path, (item, at) => parseString(item, at, idText)),
    nodeId: required(fields, "nodeId", path, (item, at) => parseString(item, at, idText)),
    slot: required(fields, "slot", path, (item, at) => parseInteger(item, at, { min: 0, max: Number.MAX_SAFE_INTEGER })),
    ready: required(fields, "ready", path, parseBoolean),
    addresses: required(fields, "addresses", path, parseAddresses),
  };
}

function parseMapService(value: unknown, path: string): NetworkMapService {
  const fields = parseFields(value, path, ["id", "name", "endpointMode", "virtualIps", "publishedPorts", "trafficPolicy", "hostPorts", "tasks"]);
  return {
    id: required(fields, "id", path, (item, at) => parseString(item, at, idText)),
    name: required(fields, "name", path, (item, at) => parseString(item, at, { bytesMax: 63, allowEmpty: false })),
    endpointMode: required(fields, "endpointMode", path, (item, at) => parseEnum(item, at, ["vip", "dnsrr"] as const)),
    virtualIps: required(fields, "virtualIps", path, parseAddresses),
    publishedPorts: required(fields, "publishedPorts", path, parsePorts),
    trafficPolicy: required(fields, "trafficPolicy", path, (item, at) => parseEnum(item, at, ["cluster", "local"] as const)),
    hostPorts: required(fields, "hostPorts", path, parsePorts),
    tasks: required(fields, "tasks", path, (item, at) => parseArray(item, at, networkMapTasksMax, parseMapTask)),
  };
}

/** Parses a map received from a manager; InvalidArgumentError names the first bad field. */
export function parseNetworkMap(data: Uint8Array): NetworkMap {
  if (data.byteLength > networkMapBytesMax) throw new InvalidArgumentError(`network map of ${data.byteLength} bytes is over ${networkMapBytesMax}`);
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString("utf8"));
  } catch (error) {
    throw new InvalidArgumentError("network map is not valid JSON", { cause: error });
  }
  const fields = parseFields(value, "networkMap", ["nodes", "networks", "services"]);
  return {
    nodes: required(fields, "nodes", "networkMap", (item, at) =>
      parseArray(item, at, networkMapNodesMax, (node, where) => {
        const nodeFields = parseFields(node, where, ["nodeId", "addr", "ingressAddress"]);
        const parsed: NetworkMapNode = {
          nodeId: required(nodeFields, "nodeId", where, (text, path) => parseString(text, path, idText)),
          addr: required(nodeFields, "addr", where, (text, path) => parseString(text, path, { bytesMax: 64, allowEmpty: false })),
        };
        if (nodeFields["ingressAddress"] !== undefined) parsed.ingressAddress = parseCidrText(nodeFields["ingressAddress"], `${where}.ingressAddress`);
        return parsed;
      }),
    ),
    networks: required(fields, "networks", "networkMap", (item, at) => parseArray(item, at, 4_096, parseMapNetwork)),
    services: required(fields, "services", "networkMap", (item, at) => parseArray(item, at, networkMapServicesMax, parseMapService)),
  };
}
