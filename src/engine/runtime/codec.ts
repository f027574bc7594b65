import { InternalError } from "../../common/errors.js";
import { parseNetworkMode, type NetworkAttachment } from "../network/network.js";
import type { PortBinding } from "../network/ports.js";
import type { MountRequest } from "../volumes/mounts.js";
import type { ImageRuntimeConfig } from "./spec/process.js";
import type { ResourceLimits } from "./spec/spec.js";
import type { ContainerRecord, ContainerState, ContainerStatus } from "./types.js";

/*
 * Parsers for the files shoal keeps per container. They are ours, but they live on disk
 * and survive upgrades and crashes, so they are checked field by field on every read.
 */

type Json = Record<string, unknown>;

function fail(what: string): never {
  throw new InternalError(`corrupt container file: ${what}`);
}

function isJson(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function object(value: unknown, what: string): Json {
  if (!isJson(value)) fail(`${what} is not an object`);
  return value;
}

function string(value: unknown, what: string): string {
  if (typeof value !== "string") fail(`${what} is not a string`);
  return value;
}

function number(value: unknown, what: string): number {
  if (typeof value !== "number" || !Number.isFinite(value)) fail(`${what} is not a number`);
  return value;
}

function boolean(value: unknown, what: string): boolean {
  if (typeof value !== "boolean") fail(`${what} is not a boolean`);
  return value;
}

function nullable<T>(value: unknown, parse: (item: unknown, what: string) => T, what: string): T | null {
  return value === null || value === undefined ? null : parse(value, what);
}

function strings(value: unknown, what: string): string[] {
  if (!Array.isArray(value)) fail(`${what} is not a list`);
  return value.map((item, index) => string(item, `${what}[${index}]`));
}

function stringMap(value: unknown, what: string): Record<string, string> {
  const source = object(value, what);
  const result: Record<string, string> = {};
  for (const [key, item] of Object.entries(source)) result[key] = string(item, `${what}.${key}`);
  return result;
}

function parsePort(value: unknown, what: string): PortBinding {
  const item = object(value, what);
  const protocol = item.protocol === "udp" ? "udp" : item.protocol === "tcp" ? "tcp" : fail(`${what}.protocol`);
  return {
    hostIp: string(item.hostIp, `${what}.hostIp`),
    hostPort: number(item.hostPort, `${what}.hostPort`),
    containerPort: number(item.containerPort, `${what}.containerPort`),
    protocol,
  };
}

function parseMount(value: unknown, what: string): MountRequest {
  const item = object(value, what);
  const target = string(item.target, `${what}.target`);
  switch (item.type) {
    case "volume":
      return { type: "volume", name: string(item.name, `${what}.name`), target, readOnly: boolean(item.readOnly, what) };
    case "bind":
      return { type: "bind", source: string(item.source, `${what}.source`), target, readOnly: boolean(item.readOnly, what) };
    case "tmpfs":
      return { type: "tmpfs", target, sizeBytes: nullable(item.sizeBytes, number, `${what}.sizeBytes`) };
    default:
      return fail(`${what}.type`);
  }
}

function parseResources(value: unknown): ResourceLimits {
  const item = object(value, "resources");
  const resources: ResourceLimits = {};
  for (const key of ["memoryBytes", "cpus", "cpuShares", "pidsLimit", "nofile"] as const) {
    if (item[key] !== undefined) resources[key] = number(item[key], `resources.${key}`);
  }
  return resources;
}

function parseImageConfig(value: unknown): ImageRuntimeConfig {
  const item = object(value, "imageConfig");
  return {
    entrypoint: strings(item.entrypoint, "imageConfig.entrypoint"),
    cmd: strings(item.cmd, "imageConfig.cmd"),
    env: strings(item.env, "imageConfig.env"),
    workingDir: string(item.workingDir, "imageConfig.workingDir"),
    user: string(item.user, "imageConfig.user"),
    stopSignal: nullable(item.stopSignal, string, "imageConfig.stopSignal"),
  };
}

export function parseContainerRecord(text: string): ContainerRecord {
  const item = object(JSON.parse(text), "config");
  return {
    id: string(item.id, "id"),
    name: string(item.name, "name"),
    createdAt: string(item.createdAt, "createdAt"),
    image: string(item.image, "image"),
    imageId: string(item.imageId, "imageId"),
    imageConfig: parseImageConfig(item.imageConfig),
    entrypoint: nullable(item.entrypoint, strings, "entrypoint"),
    cmd: nullable(item.cmd, strings, "cmd"),
    env: strings(item.env, "env"),
    user: nullable(item.user, string, "user"),
    workingDir: nullable(item.workingDir, string, "workingDir"),
    hostname: string(item.hostname, "hostname"),
    labels: stringMap(item.labels, "labels"),
    stopSignal: string(item.stopSignal, "stopSignal"),
    stopTimeoutSeconds: number(item.stopTimeoutSeconds, "stopTimeoutSeconds"),
    networkMode: parseNetworkMode(string(item.networkMode, "networkMode")),
    portBindings: (Array.isArray(item.portBindings) ? item.portBindings : fail("portBindings")).map((port, index) =>
      parsePort(port, `portBindings[${index}]`),
    ),
    mounts: (Array.isArray(item.mounts) ? item.mounts : fail("mounts")).map((mount, index) =>
      parseMount(mount, `mounts[${index}]`),
    ),
    resources: parseResources(item.resources),
    readonlyRootfs: boolean(item.readonlyRootfs, "readonlyRootfs"),
  };
}

function parseNetwork(value: unknown): NetworkAttachment {
  const item = object(value, "network");
  return {
    mode: parseNetworkMode(string(item.mode, "network.mode")),
    netnsName: nullable(item.netnsName, string, "network.netnsName"),
    ipAddress: nullable(item.ipAddress, string, "network.ipAddress"),
    prefixLength: nullable(item.prefixLength, number, "network.prefixLength"),
    gateway: nullable(item.gateway, string, "network.gateway"),
    macAddress: nullable(item.macAddress, string, "network.macAddress"),
    ports: (Array.isArray(item.ports) ? item.ports : fail("network.ports")).map((port, index) =>
      parsePort(port, `network.ports[${index}]`),
    ),
  };
}

const statuses: readonly ContainerStatus[] = ["created", "running", "exited"];

export function parseContainerState(text: string): ContainerState {
  const item = object(JSON.parse(text), "state");
  const status = statuses.find((candidate) => candidate === item.status) ?? fail("status");
  return {
    status,
    pid: number(item.pid, "pid"),
    startedAt: nullable(item.startedAt, string, "startedAt"),
    finishedAt: nullable(item.finishedAt, string, "finishedAt"),
    exitCode: nullable(item.exitCode, number, "exitCode"),
    oomKilled: boolean(item.oomKilled, "oomKilled"),
    error: string(item.error, "error"),
    restartCount: number(item.restartCount, "restartCount"),
    network: nullable(item.network, (value) => parseNetwork(value), "network"),
  };
}
