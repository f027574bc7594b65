import { mkdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";

import { InvalidArgumentError, errorMessage, systemErrorCode } from "../common/errors.js";
import { writeFileAtomic } from "../common/files.js";
import { loadTlsMaterial, privateFileMode, saveTlsMaterial, type TlsMaterial } from "../rpc/tls/index.js";

/** Where a worker-only node keeps what it needs to rejoin its swarm after a restart. */
export const workerSwarmDirectory = "swarm-worker";
const stateFormat = "shoal.worker.state";
const stateFormatVersion = 1;
/** Manager addresses remembered for reconnecting. */
export const workerManagersMax = 64;
const addressLengthMax = 256;

export interface WorkerSwarmState {
  readonly clusterId: string;
  readonly nodeId: string;
  /** "host:port" of the managers given at join. */
  readonly managers: readonly string[];
  readonly material: TlsMaterial;
}

function workerPaths(dataDir: string): { root: string; stateFile: string; certificates: string } {
  const root = join(dataDir, workerSwarmDirectory);
  return { root, stateFile: join(root, "state.json"), certificates: join(root, "certificates") };
}

function parseWorkerState(value: unknown, path: string): Omit<WorkerSwarmState, "material"> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new InvalidArgumentError(`${path} must hold an object`);
  const record: Record<string, unknown> = { ...value };
  if (record["format"] !== stateFormat || record["formatVersion"] !== stateFormatVersion) {
    throw new InvalidArgumentError(`${path} is not a ${stateFormat} file of version ${stateFormatVersion}: delete ${path} and join again`);
  }
  const { clusterId, nodeId, managers } = record;
  if (typeof clusterId !== "string" || clusterId === "") throw new InvalidArgumentError(`${path}: clusterId must be a non-empty string`);
  if (typeof nodeId !== "string" || nodeId === "") throw new InvalidArgumentError(`${path}: nodeId must be a non-empty string`);
  if (!Array.isArray(managers) || managers.length === 0 || managers.length > workerManagersMax) {
    throw new InvalidArgumentError(`${path}: managers must list 1 to ${workerManagersMax} addresses`);
  }
  const addresses = managers.map((item: unknown) => {
    if (typeof item !== "string" || item.length === 0 || item.length > addressLengthMax) throw new InvalidArgumentError(`${path}: every manager must be a "host:port" string`);
    return item;
  });
  return { clusterId, nodeId, managers: addresses };
}

/** The saved worker state, or undefined when this node has not joined as a worker. */
export async function loadWorkerState(dataDir: string): Promise<WorkerSwarmState | undefined> {
  const paths = workerPaths(dataDir);
  let text: string;
  try {
    text = await readFile(paths.stateFile, "utf8");
  } catch (error) {
    if (systemErrorCode(error) === "ENOENT") return undefined;
    throw error;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new InvalidArgumentError(`${paths.stateFile} is not JSON (${errorMessage(error)}): delete it and join again`, { cause: error });
  }
  const state = parseWorkerState(parsed, paths.stateFile);
  const material = await loadTlsMaterial(paths.certificates);
  if (material === undefined) throw new InvalidArgumentError(`${paths.certificates} holds no certificate: delete ${paths.root} and join again`);
  return { ...state, material };
}

/** Writes the certificates first, then the state file that makes them count. */
export async function saveWorkerState(dataDir: string, state: WorkerSwarmState): Promise<void> {
  const paths = workerPaths(dataDir);
  await mkdir(paths.root, { recursive: true, mode: 0o700 });
  await saveTlsMaterial(paths.certificates, state.material);
  const { clusterId, nodeId, managers } = state;
  await writeFileAtomic(paths.stateFile, JSON.stringify({ format: stateFormat, formatVersion: stateFormatVersion, clusterId, nodeId, managers }), { mode: privateFileMode });
}

export async function removeWorkerState(dataDir: string): Promise<void> {
  await rm(workerPaths(dataDir).root, { recursive: true, force: true });
}
