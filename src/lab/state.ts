import { mkdir, readFile, readdir, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";

import { InvalidArgumentError, errorMessage, systemErrorCode } from "../common/errors.js";
import type { LabRole } from "./names.js";

/** Where lab state lives: on tmpfs, so a reboot (which also drops every netns) forgets labs. */
export const labStateRoot = "/run/shoal-lab";
/** Default parent of host directories; a caller (tests) may pass a tmp dir instead. */
export const labHostsRootDefault = "/var/lib/shoal-lab";

export interface LabHostState {
  readonly name: string;
  readonly role: LabRole;
  readonly address: string;
  readonly netns: string;
  readonly veth: string;
  /** The persistent UTS namespace file that carries the host's hostname. */
  readonly utsFile: string;
  readonly dir: string;
  readonly dataDir: string;
  readonly runDir: string;
  readonly socket: string;
  readonly logFile: string;
  /** The shoald process id, or null when the lab stopped it. */
  readonly pid: number | null;
}

export interface LabState {
  readonly version: 1;
  readonly name: string;
  readonly bridge: string;
  readonly subnet: string;
  readonly gateway: string;
  /** Parent of the host dirs; removed by down. */
  readonly hostsRoot: string;
  readonly managers: number;
  readonly workers: number;
  readonly hosts: readonly LabHostState[];
}

export function labStateDir(name: string): string {
  return join(labStateRoot, name);
}

function field(record: Record<string, unknown>, key: string, where: string): string {
  const value = record[key];
  if (typeof value !== "string" || value === "") throw new InvalidArgumentError(`${where}: "${key}" must be a non-empty string`);
  return value;
}

function count(record: Record<string, unknown>, key: string, where: string): number {
  const value = record[key];
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0) throw new InvalidArgumentError(`${where}: "${key}" must be a whole number`);
  return value;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function parseHost(value: unknown, where: string): LabHostState {
  if (!isRecord(value)) throw new InvalidArgumentError(`${where} is not an object`);
  const role = value["role"];
  if (role !== "manager" && role !== "worker") throw new InvalidArgumentError(`${where}: "role" must be manager or worker`);
  const pid = value["pid"];
  if (pid !== null && (typeof pid !== "number" || !Number.isInteger(pid) || pid <= 0)) throw new InvalidArgumentError(`${where}: "pid" must be a process id or null`);
  return {
    name: field(value, "name", where),
    role,
    address: field(value, "address", where),
    netns: field(value, "netns", where),
    veth: field(value, "veth", where),
    utsFile: field(value, "utsFile", where),
    dir: field(value, "dir", where),
    dataDir: field(value, "dataDir", where),
    runDir: field(value, "runDir", where),
    socket: field(value, "socket", where),
    logFile: field(value, "logFile", where),
    pid,
  };
}

/** Parses state.json; anything that does not match the current layout is an error, never guessed at. */
export function parseLabState(text: string, where: string): LabState {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new InvalidArgumentError(`${where} is not JSON: ${errorMessage(error)}; run \`lab down\` to remove the lab`, { cause: error });
  }
  if (!isRecord(parsed)) throw new InvalidArgumentError(`${where} is not a JSON object`);
  if (parsed["version"] !== 1) throw new InvalidArgumentError(`${where} has an unknown version; run \`lab down\` to remove the lab`);
  const hosts = parsed["hosts"];
  if (!Array.isArray(hosts)) throw new InvalidArgumentError(`${where}: "hosts" must be an array`);
  return {
    version: 1,
    name: field(parsed, "name", where),
    bridge: field(parsed, "bridge", where),
    subnet: field(parsed, "subnet", where),
    gateway: field(parsed, "gateway", where),
    hostsRoot: field(parsed, "hostsRoot", where),
    managers: count(parsed, "managers", where),
    workers: count(parsed, "workers", where),
    hosts: hosts.map((host: unknown, index) => parseHost(host, `${where} hosts[${index}]`)),
  };
}

/** The lab's state, or undefined when no lab of that name exists. */
export async function readLabState(name: string): Promise<LabState | undefined> {
  const path = join(labStateDir(name), "state.json");
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    if (systemErrorCode(error) === "ENOENT") return undefined;
    throw error;
  }
  return parseLabState(text, path);
}

/** Written to a temporary file and renamed, so a crash never leaves half a state file. */
export async function writeLabState(state: LabState): Promise<void> {
  const dir = labStateDir(state.name);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, "state.json");
  await writeFile(`${path}.tmp`, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  await rename(`${path}.tmp`, path);
}

export async function removeLabStateDir(name: string): Promise<void> {
  await rm(labStateDir(name), { recursive: true, force: true });
}

/** Names of every lab with a state directory (complete or from a crashed `up`). */
export async function listLabNames(): Promise<string[]> {
  try {
    return (await readdir(labStateRoot, { withFileTypes: true })).filter((entry) => entry.isDirectory()).map((entry) => entry.name);
  } catch (error) {
    if (systemErrorCode(error) === "ENOENT") return [];
    throw error;
  }
}
