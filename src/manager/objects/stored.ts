import { clusterDefaults } from "./defaults.js";
import { specLimits } from "./limits.js";
import {
  childPath,
  parseEnum,
  parseFields,
  parseInteger,
  parseString,
  required,
  withDefault,
} from "./parse.js";
import { parseCidrText, parseNetworkAttachments, parseNetworkObject, parseServiceEndpointState, type Network } from "./network.js";
import { parseName, parseServiceSpec, parseStoredEndpoint } from "./service-spec.js";
import { parseDurationMs, parseLabelsField, parsePlatform, parseTaskSpec } from "./task-spec.js";
import { taskStates } from "./task-state.js";
import {
  nodeAvailabilities,
  nodeRoles,
  nodeStates,
  taskHealthStates,
  updateStates,
  type Cluster,
  type ClusterSpec,
  type ContainerStatus,
  type Meta,
  type Node,
  type NodeDescription,
  type NodeSpec,
  type Service,
  type Task,
  type TaskStatus,
  type UpdateStatus,
} from "./types.js";

/**
 * Parsers for whole objects as the store keeps them (raft entries, snapshots): the same
 * checks as user specs, plus the system-written fields.
 */

const count = { min: 0, max: Number.MAX_SAFE_INTEGER };
const idText = { bytesMax: 64, allowEmpty: false, pattern: /^[a-z0-9]+$/u, patternText: "lower-case letters and digits" };
const shortText = { bytesMax: specLimits.shortTextBytesMax };
const messageText = { bytesMax: specLimits.messageBytesMax };

const parseCount = (value: unknown, path: string): number => parseInteger(value, path, count);
export const parseObjectId = (value: unknown, path: string): string => parseString(value, path, idText);

export function parseMeta(value: unknown, path: string): Meta {
  const fields = parseFields(value, path, ["version", "createdAt", "updatedAt"]);
  return {
    version: required(fields, "version", path, parseCount),
    createdAt: required(fields, "createdAt", path, parseCount),
    updatedAt: required(fields, "updatedAt", path, parseCount),
  };
}

function parseUpdateStatus(value: unknown, path: string): UpdateStatus {
  const fields = parseFields(value, path, ["state", "startedAt", "completedAt", "message"]);
  return {
    state: required(fields, "state", path, (item, at) => parseEnum(item, at, updateStates)),
    startedAt: required(fields, "startedAt", path, parseCount),
    completedAt: required(fields, "completedAt", path, parseCount),
    message: required(fields, "message", path, (item, at) => parseString(item, at, messageText)),
  };
}

export function parseService(value: unknown, path: string): Service {
  const fields = parseFields(value, path, ["id", "meta", "spec", "specVersion", "previousSpec", "updateStatus", "endpoint"]);
  const service: Service = {
    id: required(fields, "id", path, parseObjectId),
    meta: required(fields, "meta", path, parseMeta),
    spec: required(fields, "spec", path, parseServiceSpec),
    specVersion: required(fields, "specVersion", path, parseCount),
  };
  if (fields["previousSpec"] !== undefined) service.previousSpec = parseServiceSpec(fields["previousSpec"], childPath(path, "previousSpec"));
  if (fields["updateStatus"] !== undefined) service.updateStatus = parseUpdateStatus(fields["updateStatus"], childPath(path, "updateStatus"));
  if (fields["endpoint"] !== undefined) service.endpoint = parseServiceEndpointState(fields["endpoint"], childPath(path, "endpoint"));
  return service;
}

function parseNodeSpec(value: unknown, path: string): NodeSpec {
  const fields = parseFields(value, path, ["name", "labels", "role", "availability"]);
  return {
    name: withDefault(fields, "name", path, "", (item, at) => (item === "" ? "" : parseName(item, at))),
    labels: parseLabelsField(fields, "labels", path),
    role: withDefault(fields, "role", path, "worker" as const, (item, at) => parseEnum(item, at, nodeRoles)),
    availability: withDefault(fields, "availability", path, "active" as const, (item, at) => parseEnum(item, at, nodeAvailabilities)),
  };
}

function parseNodeDescription(value: unknown, path: string): NodeDescription {
  const fields = parseFields(value, path, ["hostname", "platform", "resources", "engine"]);
  const resourcesPath = childPath(path, "resources");
  const resources = parseFields(required(fields, "resources", path, (item) => item), resourcesPath, ["nanoCPUs", "memoryBytes"]);
  const enginePath = childPath(path, "engine");
  const engine = parseFields(required(fields, "engine", path, (item) => item), enginePath, ["engineVersion", "labels"]);
  return {
    hostname: required(fields, "hostname", path, (item, at) => parseString(item, at, shortText)),
    platform: required(fields, "platform", path, parsePlatform),
    resources: {
      nanoCPUs: required(resources, "nanoCPUs", resourcesPath, parseCount),
      memoryBytes: required(resources, "memoryBytes", resourcesPath, parseCount),
    },
    engine: {
      engineVersion: withDefault(engine, "engineVersion", enginePath, "", (item, at) => parseString(item, at, shortText)),
      labels: parseLabelsField(engine, "labels", enginePath),
    },
  };
}

/** Parses a node as stored; `spec` fields left out take their defaults (worker, active). */
export function parseNode(value: unknown, path: string): Node {
  const fields = parseFields(value, path, ["id", "meta", "spec", "description", "status"]);
  const statusPath = childPath(path, "status");
  const status = parseFields(required(fields, "status", path, (item) => item), statusPath, ["state", "addr", "message"]);
  const node: Node = {
    id: required(fields, "id", path, parseObjectId),
    meta: required(fields, "meta", path, parseMeta),
    spec: required(fields, "spec", path, parseNodeSpec),
    status: {
      state: required(status, "state", statusPath, (item, at) => parseEnum(item, at, nodeStates)),
      addr: withDefault(status, "addr", statusPath, "", (item, at) => parseString(item, at, shortText)),
      message: withDefault(status, "message", statusPath, "", (item, at) => parseString(item, at, messageText)),
    },
  };
  if (fields["description"] !== undefined) node.description = parseNodeDescription(fields["description"], childPath(path, "description"));
  return node;
}

function parseContainerStatus(value: unknown, path: string): ContainerStatus {
  const fields = parseFields(value, path, ["containerId", "pid", "exitCode"]);
  return {
    containerId: withDefault(fields, "containerId", path, "", (item, at) => parseString(item, at, shortText)),
    pid: withDefault(fields, "pid", path, 0, parseCount),
    exitCode: withDefault(fields, "exitCode", path, 0, (item, at) => parseInteger(item, at, { min: -1, max: 255 })),
  };
}

function parseTaskStatus(value: unknown, path: string): TaskStatus {
  const fields = parseFields(value, path, ["state", "timestamp", "message", "err", "containerStatus", "health"]);
  const status: TaskStatus = {
    state: required(fields, "state", path, (item, at) => parseEnum(item, at, taskStates)),
    timestamp: required(fields, "timestamp", path, parseCount),
    message: withDefault(fields, "message", path, "", (item, at) => parseString(item, at, messageText)),
    err: withDefault(fields, "err", path, "", (item, at) => parseString(item, at, messageText)),
  };
  if (fields["containerStatus"] !== undefined) status.containerStatus = parseContainerStatus(fields["containerStatus"], childPath(path, "containerStatus"));
  if (fields["health"] !== undefined) status.health = parseEnum(fields["health"], childPath(path, "health"), taskHealthStates);
  return status;
}

const taskFields = ["id", "meta", "serviceId", "serviceName", "slot", "nodeId", "desiredState", "spec", "specVersion", "endpoint", "attempt", "status", "networkAttachments"];

export function parseTask(value: unknown, path: string): Task {
  const fields = parseFields(value, path, taskFields);
  const task: Task = {
    id: required(fields, "id", path, parseObjectId),
    meta: required(fields, "meta", path, parseMeta),
    serviceId: required(fields, "serviceId", path, parseObjectId),
    serviceName: withDefault(fields, "serviceName", path, "", (item, at) => (item === "" ? "" : parseName(item, at))),
    slot: required(fields, "slot", path, parseCount),
    nodeId: withDefault(fields, "nodeId", path, "", (item, at) => parseString(item, at, { ...idText, allowEmpty: true })),
    desiredState: required(fields, "desiredState", path, (item, at) => parseEnum(item, at, taskStates)),
    spec: required(fields, "spec", path, parseTaskSpec),
    specVersion: required(fields, "specVersion", path, parseCount),
    endpoint: withDefault(fields, "endpoint", path, { mode: "vip", ports: [] }, parseStoredEndpoint),
    attempt: withDefault(fields, "attempt", path, 0, parseCount),
    status: required(fields, "status", path, parseTaskStatus),
  };
  if (fields["networkAttachments"] !== undefined) task.networkAttachments = parseNetworkAttachments(fields["networkAttachments"], childPath(path, "networkAttachments"));
  return task;
}

export function parseNetwork(value: unknown, path: string): Network {
  return parseNetworkObject(value, path, parseMeta);
}

export function parseClusterSpec(value: unknown, path: string): ClusterSpec {
  const fields = parseFields(value, path, [
    "name",
    "labels",
    "taskHistoryRetentionLimit",
    "heartbeatPeriodMs",
    "snapshotIntervalEntries",
    "nodeCertExpiryMs",
    "defaultAddressPool",
  ]);
  const spec: ClusterSpec = {
    name: required(fields, "name", path, parseName),
    labels: parseLabelsField(fields, "labels", path),
    taskHistoryRetentionLimit: withDefault(fields, "taskHistoryRetentionLimit", path, clusterDefaults.taskHistoryRetentionLimit, (item, at) =>
      parseInteger(item, at, { min: 0, max: 1_000 }),
    ),
    heartbeatPeriodMs: withDefault(fields, "heartbeatPeriodMs", path, clusterDefaults.heartbeatPeriodMs, (item, at) =>
      parseInteger(item, at, { min: 100, max: 60_000 }),
    ),
    snapshotIntervalEntries: withDefault(fields, "snapshotIntervalEntries", path, clusterDefaults.snapshotIntervalEntries, (item, at) =>
      parseInteger(item, at, { min: 1, max: 10_000_000 }),
    ),
    nodeCertExpiryMs: withDefault(fields, "nodeCertExpiryMs", path, clusterDefaults.nodeCertExpiryMs, parseDurationMs),
  };
  if (fields["defaultAddressPool"] !== undefined) spec.defaultAddressPool = parseCidrText(fields["defaultAddressPool"], childPath(path, "defaultAddressPool"));
  return spec;
}

export function parseCluster(value: unknown, path: string): Cluster {
  const fields = parseFields(value, path, ["id", "meta", "spec", "rootCa", "joinTokens"]);
  const tokensPath = childPath(path, "joinTokens");
  const tokens = parseFields(required(fields, "joinTokens", path, (item) => item), tokensPath, ["worker", "manager"]);
  const cluster: Cluster = {
    id: required(fields, "id", path, parseObjectId),
    meta: required(fields, "meta", path, parseMeta),
    spec: required(fields, "spec", path, parseClusterSpec),
    joinTokens: {
      worker: required(tokens, "worker", tokensPath, (item, at) => parseString(item, at, shortText)),
      manager: required(tokens, "manager", tokensPath, (item, at) => parseString(item, at, shortText)),
    },
  };
  if (fields["rootCa"] !== undefined) {
    const caPath = childPath(path, "rootCa");
    const ca = parseFields(fields["rootCa"], caPath, ["certPem", "certDigest"]);
    cluster.rootCa = {
      certPem: required(ca, "certPem", caPath, (item, at) => parseString(item, at, { bytesMax: specLimits.pemBytesMax })),
      certDigest: required(ca, "certDigest", caPath, (item, at) => parseString(item, at, shortText)),
    };
  }
  return cluster;
}
