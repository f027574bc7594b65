import { InvalidArgumentError } from "../common/errors.js";
import { parseNetworkMode } from "../engine/network/network.js";
import type { PortBinding } from "../engine/network/ports.js";
import { resolveArgs } from "../engine/runtime/spec/process.js";
import type { ContainerCreateRequest, ContainerInfo } from "../engine/runtime/types.js";
import { parseTmpfsSpec, parseVolumeSpec, type MountRequest } from "../engine/volumes/mounts.js";

/**
 * Docker's container JSON <-> the engine's container model. The Docker CLI sends many
 * fields at their zero values; those are accepted and ignored. A field shoal cannot honour
 * with a non-default value (a TTY, privileged mode) is refused by name instead.
 */

type Fields = Readonly<Record<string, unknown>>;

function fields(value: unknown, what: string): Fields {
  if (value === undefined || value === null) return {};
  if (typeof value !== "object" || Array.isArray(value)) throw new InvalidArgumentError(`${what} must be a JSON object`);
  return { ...value };
}

function optionalString(record: Fields, key: string, what: string): string | undefined {
  const value = record[key];
  if (value === undefined || value === null || value === "") return undefined;
  if (typeof value !== "string") throw new InvalidArgumentError(`${what}.${key} must be a string`);
  return value;
}

function optionalStrings(record: Fields, key: string, what: string): string[] | undefined {
  const value = record[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value === "string") return [value];
  if (!Array.isArray(value) || !value.every((item): item is string => typeof item === "string")) {
    throw new InvalidArgumentError(`${what}.${key} must be an array of strings`);
  }
  return value;
}

function optionalNumber(record: Fields, key: string, what: string): number | undefined {
  const value = record[key];
  if (value === undefined || value === null || value === 0) return undefined;
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0) throw new InvalidArgumentError(`${what}.${key} must be a non-negative number`);
  return value;
}

function stringMap(record: Fields, key: string, what: string): Record<string, string> {
  const map: Record<string, string> = {};
  for (const [name, value] of Object.entries(fields(record[key], `${what}.${key}`))) {
    if (typeof value !== "string") throw new InvalidArgumentError(`${what}.${key}["${name}"] must be a string`);
    map[name] = value;
  }
  return map;
}

function refuseUnsupported(config: Fields, host: Fields): void {
  const refused: Array<[boolean, string]> = [
    [config.Tty === true, "Tty (interactive terminals) is not supported by shoal yet: run without -t"],
    [config.OpenStdin === true, "OpenStdin (attaching stdin) is not supported by shoal yet: run without -i"],
    [host.Privileged === true, "HostConfig.Privileged is not supported: shoal never runs privileged containers"],
  ];
  for (const [isSet, message] of refused) if (isSet) throw new InvalidArgumentError(message);
}

function parsePortBindings(host: Fields): PortBinding[] {
  const bindings: PortBinding[] = [];
  for (const [containerPort, list] of Object.entries(fields(host.PortBindings, "HostConfig.PortBindings"))) {
    const match = /^(\d{1,5})(?:\/(tcp|udp))?$/.exec(containerPort);
    if (match === null) throw new InvalidArgumentError(`HostConfig.PortBindings key "${containerPort}" must be PORT/tcp or PORT/udp`);
    if (list === null) continue;
    if (!Array.isArray(list)) throw new InvalidArgumentError(`HostConfig.PortBindings["${containerPort}"] must be an array`);
    for (const item of list) {
      const binding = fields(item, `HostConfig.PortBindings["${containerPort}"][]`);
      const hostPort = optionalString(binding, "HostPort", "PortBinding") ?? "0";
      if (!/^\d{1,5}$/.test(hostPort)) throw new InvalidArgumentError(`HostPort "${hostPort}" must be a port number (ranges are not supported)`);
      bindings.push({
        hostIp: optionalString(binding, "HostIp", "PortBinding") ?? "",
        hostPort: Number(hostPort),
        containerPort: Number(match[1]),
        protocol: match[2] === "udp" ? "udp" : "tcp",
      });
    }
  }
  return bindings;
}

function parseMounts(host: Fields): MountRequest[] {
  const mounts = (optionalStrings(host, "Binds", "HostConfig") ?? []).map(parseVolumeSpec);
  for (const [target, options] of Object.entries(fields(host.Tmpfs, "HostConfig.Tmpfs"))) {
    mounts.push(parseTmpfsSpec(typeof options === "string" && options !== "" ? `${target}:${options}` : target));
  }
  const structured = host.Mounts;
  if (structured === undefined || structured === null) return mounts;
  if (!Array.isArray(structured)) throw new InvalidArgumentError("HostConfig.Mounts must be an array");
  for (const item of structured) {
    const mount = fields(item, "HostConfig.Mounts[]");
    const type = optionalString(mount, "Type", "Mount") ?? "volume";
    const target = optionalString(mount, "Target", "Mount") ?? "";
    const source = optionalString(mount, "Source", "Mount") ?? "";
    const readOnly = mount.ReadOnly === true;
    if (type === "bind" || type === "volume") mounts.push(parseVolumeSpec(`${source}:${target}${readOnly ? ":ro" : ""}`));
    else if (type === "tmpfs") mounts.push(parseTmpfsSpec(target));
    else throw new InvalidArgumentError(`mount type "${type}" is not supported: use bind, volume or tmpfs`);
  }
  return mounts;
}

/** Parses `POST /containers/create`'s body (and `?name=`) into the engine's request. */
export function parseCreateBody(body: unknown, name: string | undefined): { request: ContainerCreateRequest; autoRemove: boolean } {
  const config = fields(body, "body");
  const host = fields(config.HostConfig, "HostConfig");
  refuseUnsupported(config, host);
  const image = optionalString(config, "Image", "body");
  if (image === undefined) throw new InvalidArgumentError("Image is required");
  const networkText = optionalString(host, "NetworkMode", "HostConfig");
  const memoryBytes = optionalNumber(host, "Memory", "HostConfig");
  const nanoCpus = optionalNumber(host, "NanoCpus", "HostConfig");
  const cpuShares = optionalNumber(host, "CpuShares", "HostConfig");
  const pidsLimit = optionalNumber(host, "PidsLimit", "HostConfig");
  const stopTimeout = optionalNumber(config, "StopTimeout", "body");
  const optional = <K extends keyof ContainerCreateRequest>(key: K, value: ContainerCreateRequest[K] | undefined): Partial<ContainerCreateRequest> => (value === undefined ? {} : { [key]: value });
  const request: ContainerCreateRequest = {
    image,
    ...optional("name", name === "" ? undefined : name),
    ...optional("entrypoint", optionalStrings(config, "Entrypoint", "body")),
    ...optional("cmd", optionalStrings(config, "Cmd", "body")),
    ...optional("env", optionalStrings(config, "Env", "body")),
    ...optional("user", optionalString(config, "User", "body")),
    ...optional("workingDir", optionalString(config, "WorkingDir", "body")),
    ...optional("hostname", optionalString(config, "Hostname", "body")),
    ...optional("stopSignal", optionalString(config, "StopSignal", "body")),
    ...optional("stopTimeoutSeconds", stopTimeout),
    labels: stringMap(config, "Labels", "body"),
    // "default" is what the Docker CLI sends when --network is not given.
    networkMode: networkText === undefined || networkText === "default" ? "bridge" : parseNetworkMode(networkText),
    portBindings: parsePortBindings(host),
    mounts: parseMounts(host),
    resources: {
      ...(memoryBytes === undefined ? {} : { memoryBytes }),
      ...(nanoCpus === undefined ? {} : { cpus: nanoCpus / 1e9 }),
      ...(cpuShares === undefined ? {} : { cpuShares }),
      ...(pidsLimit === undefined ? {} : { pidsLimit }),
    },
    readonlyRootfs: host.ReadonlyRootfs === true,
  };
  return { request, autoRemove: host.AutoRemove === true };
}

function processArgs(info: ContainerInfo): string[] {
  const { record } = info;
  try {
    return resolveArgs(record.imageConfig, { ...(record.entrypoint === null ? {} : { entrypoint: record.entrypoint }), ...(record.cmd === null ? {} : { cmd: record.cmd }) });
  } catch {
    return []; // created from an image with no command: inspect still answers
  }
}

function dockerPorts(info: ContainerInfo): Record<string, Array<{ HostIp: string; HostPort: string }>> {
  const ports: Record<string, Array<{ HostIp: string; HostPort: string }>> = {};
  for (const port of info.state.network?.ports ?? info.record.portBindings) {
    (ports[`${port.containerPort}/${port.protocol}`] ??= []).push({ HostIp: port.hostIp === "" ? "0.0.0.0" : port.hostIp, HostPort: String(port.hostPort) });
  }
  return ports;
}

function dockerMounts(info: ContainerInfo): Array<Record<string, unknown>> {
  return info.record.mounts.map((mount) => ({
    Type: mount.type,
    ...(mount.type === "volume" ? { Name: mount.name } : {}),
    Source: mount.type === "bind" ? mount.source : "",
    Destination: mount.target,
    Mode: mount.type !== "tmpfs" && mount.readOnly ? "ro" : "",
    RW: mount.type === "tmpfs" || !mount.readOnly,
    Propagation: "",
  }));
}

/** Docker's State of a container: its status, or "removing" while its removal runs. */
export function dockerState(info: ContainerInfo): string {
  return info.removing ? "removing" : info.state.status;
}

/** "Up 3 minutes", "Exited (0) 2 seconds ago", "Created", as `docker ps` prints. */
export function humanStatus(info: ContainerInfo, nowMs: number): string {
  const { state } = info;
  if (info.removing) return "Removal In Progress";
  const since = (iso: string | null): string => humanDuration(nowMs - (iso === null ? nowMs : Date.parse(iso)));
  if (state.status === "running") return `Up ${since(state.startedAt)}`;
  if (state.status === "exited") return `Exited (${state.exitCode ?? -1}) ${since(state.finishedAt)} ago`;
  return "Created";
}

export function humanDuration(ms: number): string {
  const seconds = Math.max(0, Math.round(ms / 1000));
  if (seconds < 1) return "Less than a second";
  if (seconds < 60) return `${seconds} second${seconds === 1 ? "" : "s"}`;
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return minutes === 1 ? "About a minute" : `${minutes} minutes`;
  const hours = Math.round(minutes / 60);
  if (hours < 48) return hours === 1 ? "About an hour" : `${hours} hours`;
  return `${Math.round(hours / 24)} days`;
}

export function dockerContainerSummary(info: ContainerInfo, nowMs: number): Record<string, unknown> {
  const args = processArgs(info);
  const network = info.state.network;
  return {
    Id: info.record.id,
    Names: [`/${info.record.name}`],
    Image: info.record.image,
    ImageID: info.record.imageId,
    Command: args.join(" "),
    Created: Math.floor(Date.parse(info.record.createdAt) / 1000),
    Ports: (network?.ports ?? []).map((port) => ({ IP: port.hostIp === "" ? "0.0.0.0" : port.hostIp, PrivatePort: port.containerPort, PublicPort: port.hostPort, Type: port.protocol })),
    Labels: info.record.labels,
    State: dockerState(info),
    Status: humanStatus(info, nowMs),
    HostConfig: { NetworkMode: info.record.networkMode },
    NetworkSettings: { Networks: network?.ipAddress == null ? {} : { [info.record.networkMode]: { IPAddress: network.ipAddress, Gateway: network.gateway ?? "", MacAddress: network.macAddress ?? "" } } },
    Mounts: dockerMounts(info),
  };
}

export function dockerContainerInspect(info: ContainerInfo): Record<string, unknown> {
  const { record, state } = info;
  const args = processArgs(info);
  const network = state.network;
  const zeroTime = "0001-01-01T00:00:00Z";
  return {
    Id: record.id,
    Created: record.createdAt,
    Path: args[0] ?? "",
    Args: args.slice(1),
    State: {
      Status: dockerState(info),
      Running: state.status === "running",
      Paused: false,
      Restarting: false,
      OOMKilled: state.oomKilled,
      Dead: false,
      Pid: state.pid,
      ExitCode: state.exitCode ?? 0,
      Error: state.error,
      StartedAt: state.startedAt ?? zeroTime,
      FinishedAt: state.finishedAt ?? zeroTime,
    },
    Image: record.imageId,
    LogPath: info.logPath,
    Name: `/${record.name}`,
    RestartCount: state.restartCount,
    Driver: "overlay",
    Platform: "linux",
    HostConfig: {
      NetworkMode: record.networkMode,
      PortBindings: Object.fromEntries(record.portBindings.map((port) => [`${port.containerPort}/${port.protocol}`, [{ HostIp: port.hostIp, HostPort: port.hostPort === 0 ? "" : String(port.hostPort) }]])),
      Memory: record.resources.memoryBytes ?? 0,
      NanoCpus: Math.round((record.resources.cpus ?? 0) * 1e9),
      CpuShares: record.resources.cpuShares ?? 0,
      PidsLimit: record.resources.pidsLimit ?? null,
      ReadonlyRootfs: record.readonlyRootfs,
    },
    GraphDriver: { Name: "overlay", Data: null },
    Mounts: dockerMounts(info),
    Config: {
      Hostname: record.hostname,
      User: record.user ?? record.imageConfig.user,
      Env: record.env,
      Cmd: record.cmd ?? record.imageConfig.cmd,
      Entrypoint: record.entrypoint ?? record.imageConfig.entrypoint,
      Image: record.image,
      WorkingDir: record.workingDir ?? record.imageConfig.workingDir,
      Labels: record.labels,
      StopSignal: record.stopSignal,
      StopTimeout: record.stopTimeoutSeconds,
      Tty: false,
      OpenStdin: false,
      AttachStdout: false,
      AttachStderr: false,
    },
    NetworkSettings: {
      IPAddress: network?.ipAddress ?? "",
      IPPrefixLen: network?.prefixLength ?? 0,
      Gateway: network?.gateway ?? "",
      MacAddress: network?.macAddress ?? "",
      Ports: dockerPorts(info),
      Networks: network?.ipAddress == null ? {} : { [record.networkMode]: { IPAddress: network.ipAddress, IPPrefixLen: network.prefixLength ?? 0, Gateway: network.gateway ?? "", MacAddress: network.macAddress ?? "" } },
    },
  };
}
