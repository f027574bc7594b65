import type { ClusterSpecInput, SwarmInitRequest, SwarmJoinRequest } from "../../manager/controlapi/index.js";
import { nodeAvailabilities } from "../../manager/objects/index.js";
import type { Cluster, ClusterSpec, NodeAvailability } from "../../manager/objects/index.js";
import { dockerFields, dockerTime, invalidDocker, joinPath, msToNanos, nanosToMs, nested, present, type DockerFields } from "./json.js";

/** Docker's Swarm object, swarm Spec, InitRequest and JoinRequest <-> shoal's cluster. */

type Output = Record<string, unknown>;

/** The subnet size the docker CLI sends with every `swarm init`. */
const dockerDefaultSubnetSize = 24;

/** A shoal cluster spec as Docker's swarm Spec; readDockerSwarmSpec reads it back unchanged. */
export function dockerSwarmSpec(spec: ClusterSpec): Output {
  return {
    Name: spec.name,
    Labels: { ...spec.labels },
    Orchestration: { TaskHistoryRetentionLimit: spec.taskHistoryRetentionLimit },
    Raft: { SnapshotInterval: spec.snapshotIntervalEntries },
    Dispatcher: { HeartbeatPeriod: msToNanos(spec.heartbeatPeriodMs) },
    CAConfig: { NodeCertExpiry: msToNanos(spec.nodeCertExpiryMs) },
    TaskDefaults: {},
    EncryptionConfig: { AutoLockManagers: false },
  };
}

/** The Swarm object of `GET /swarm` (ClusterInfo plus JoinTokens). */
export function dockerSwarm(cluster: Cluster): Output {
  return {
    ID: cluster.id,
    Version: { Index: cluster.meta.version },
    CreatedAt: dockerTime(cluster.meta.createdAt),
    UpdatedAt: dockerTime(cluster.meta.updatedAt),
    Spec: dockerSwarmSpec(cluster.spec),
    TLSInfo: { TrustRoot: cluster.rootCa?.certPem ?? "" },
    RootRotationInProgress: false,
    JoinTokens: { Worker: cluster.joinTokens.worker, Manager: cluster.joinTokens.manager },
  };
}

/** Go's zero values mean "leave as is": only non-zero numbers become spec fields. */
function positive(fields: DockerFields, key: string): unknown {
  const value = present(fields, key);
  return value === 0 ? undefined : value;
}

function positiveDuration(fields: DockerFields, key: string, path: string): number | undefined {
  const value = present(fields, key);
  if (value === undefined || value === 0) return undefined;
  return nanosToMs(value, joinPath(path, key));
}

function assign(target: Record<string, unknown>, key: string, value: unknown): void {
  if (value !== undefined) target[key] = value;
}

/**
 * Reads Docker's swarm Spec into the cluster spec fields it sets (fields left at Go's zero
 * value are left out, so they keep their current or default value). Docker fields shoal
 * does not implement (external CAs, autolock, raft ticks, log drivers) must stay unset.
 */
export function readDockerSwarmSpec(value: unknown, path = "Spec"): ClusterSpecInput {
  const fields = dockerFields(value, path, ["Name", "Labels", "Orchestration", "Raft", "Dispatcher", "CAConfig", "TaskDefaults", "EncryptionConfig"]);
  const spec: Record<string, unknown> = {};
  assign(spec, "name", present(fields, "Name") === "" ? undefined : present(fields, "Name"));
  assign(spec, "labels", present(fields, "Labels"));
  const orchestration = nested(fields, "Orchestration", path, (item, at) => dockerFields(item, at, ["TaskHistoryRetentionLimit"]));
  if (orchestration !== undefined) assign(spec, "taskHistoryRetentionLimit", present(orchestration, "TaskHistoryRetentionLimit"));
  const raft = nested(fields, "Raft", path, (item, at) =>
    dockerFields(item, at, ["SnapshotInterval"], ["KeepOldSnapshots", "LogEntriesForSlowFollowers", "ElectionTick", "HeartbeatTick"]),
  );
  if (raft !== undefined) assign(spec, "snapshotIntervalEntries", positive(raft, "SnapshotInterval"));
  const dispatcher = nested(fields, "Dispatcher", path, (item, at) => dockerFields(item, at, ["HeartbeatPeriod"]));
  if (dispatcher !== undefined) assign(spec, "heartbeatPeriodMs", positiveDuration(dispatcher, "HeartbeatPeriod", joinPath(path, "Dispatcher")));
  const ca = nested(fields, "CAConfig", path, (item, at) => dockerFields(item, at, ["NodeCertExpiry"], ["ExternalCAs", "SigningCACert", "SigningCAKey", "ForceRotate"]));
  if (ca !== undefined) assign(spec, "nodeCertExpiryMs", positiveDuration(ca, "NodeCertExpiry", joinPath(path, "CAConfig")));
  nested(fields, "TaskDefaults", path, (item, at) => dockerFields(item, at, [], ["LogDriver"]));
  nested(fields, "EncryptionConfig", path, (item, at) => dockerFields(item, at, [], ["AutoLockManagers"]));
  return spec;
}

function readString(fields: DockerFields, key: string, path: string): string {
  const value = present(fields, key);
  if (value === undefined) return "";
  if (typeof value !== "string") throw invalidDocker(joinPath(path, key), `must be a string, got ${JSON.stringify(value)}`);
  return value;
}

function readAvailability(fields: DockerFields, path: string): NodeAvailability {
  const value = present(fields, "Availability");
  if (value === undefined || value === "") return "active";
  const found = nodeAvailabilities.find((candidate) => candidate === value);
  if (found === undefined) throw invalidDocker(joinPath(path, "Availability"), `must be one of ${nodeAvailabilities.join(", ")}, got ${JSON.stringify(value)}`);
  return found;
}

/**
 * Docker's InitRequest. One address pool is supported, cut into /24 overlay subnets; the
 * data-path settings must stay unset (VXLAN uses UDP 4789 on the advertise address).
 */
export function readSwarmInitRequest(value: unknown): SwarmInitRequest {
  const path = "InitRequest";
  const fields = dockerFields(
    value ?? {},
    path,
    ["ListenAddr", "AdvertiseAddr", "ForceNewCluster", "Spec", "Availability", "AutoLockManagers", "SubnetSize", "DefaultAddrPool"],
    ["DataPathAddr", "DataPathPort"],
  );
  // The docker CLI always sends its default subnet size.
  const subnetSize = present(fields, "SubnetSize");
  if (subnetSize !== undefined && subnetSize !== 0 && subnetSize !== dockerDefaultSubnetSize) {
    throw invalidDocker(joinPath(path, "SubnetSize"), `shoal cuts overlay subnets of /${dockerDefaultSubnetSize} only; leave it at ${dockerDefaultSubnetSize}`);
  }
  const pool = readDefaultAddrPool(present(fields, "DefaultAddrPool"), joinPath(path, "DefaultAddrPool"));
  if (present(fields, "AutoLockManagers") === true) throw invalidDocker(joinPath(path, "AutoLockManagers"), "autolock is not supported by shoal yet");
  const force = present(fields, "ForceNewCluster");
  if (force !== undefined && typeof force !== "boolean") throw invalidDocker(joinPath(path, "ForceNewCluster"), "must be true or false");
  return {
    listenAddr: readString(fields, "ListenAddr", path),
    advertiseAddr: readString(fields, "AdvertiseAddr", path),
    forceNewCluster: force === true,
    spec: { ...(nested(fields, "Spec", path, readDockerSwarmSpec) ?? {}), ...(pool === undefined ? {} : { defaultAddressPool: pool }) },
    availability: readAvailability(fields, path),
  };
}

/** DefaultAddrPool: absent, empty, or one CIDR (the cluster spec's parser validates it). */
function readDefaultAddrPool(value: unknown, path: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value) || !value.every((item): item is string => typeof item === "string")) throw invalidDocker(path, "must be a list of CIDR strings");
  if (value.length > 1) throw invalidDocker(path, "shoal takes one address pool; give a single CIDR such as 10.240.0.0/12");
  return value[0];
}

/** Docker's JoinRequest. */
export function readSwarmJoinRequest(value: unknown): SwarmJoinRequest {
  const path = "JoinRequest";
  const fields = dockerFields(value ?? {}, path, ["ListenAddr", "AdvertiseAddr", "RemoteAddrs", "JoinToken", "Availability"], ["DataPathAddr"]);
  const remote = present(fields, "RemoteAddrs");
  if (!Array.isArray(remote) || remote.length === 0 || !remote.every((item): item is string => typeof item === "string" && item !== "")) {
    throw invalidDocker(joinPath(path, "RemoteAddrs"), "name at least one manager address (host:port) to join through");
  }
  const joinToken = readString(fields, "JoinToken", path);
  if (joinToken === "") throw invalidDocker(joinPath(path, "JoinToken"), "is required: get one with `swarm join-token worker` on a manager");
  return {
    listenAddr: readString(fields, "ListenAddr", path),
    advertiseAddr: readString(fields, "AdvertiseAddr", path),
    remoteAddrs: [...remote],
    joinToken,
    availability: readAvailability(fields, path),
  };
}
