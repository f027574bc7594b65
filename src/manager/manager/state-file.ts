import { mkdir } from "node:fs/promises";
import { join } from "node:path";

import { FailedPreconditionError, InvalidArgumentError, errorMessage, throwIfAborted } from "../../common/errors.js";
import { syncDirectory, writeFileAtomic } from "../../common/files.js";
import { isIdentityField, privateFileMode, readFileIfPresent } from "../../rpc/tls/index.js";
import { memberAddressLengthMax, parseManagerMembers, type ManagerMember } from "./member-directory.js";

/** Where a manager keeps its swarm state inside the daemon's data directory. */
export const swarmLayout = {
  directory: "swarm",
  stateFile: "state.json",
  certificates: "certificates",
  ca: "ca",
  raft: "raft",
} as const;

const stateFormat = "shoal.manager.state";
const stateFormatVersion = 1;

export interface SwarmPaths {
  readonly root: string;
  readonly stateFile: string;
  readonly certificates: string;
  readonly ca: string;
  readonly raft: string;
}

export function swarmPaths(dataDir: string): SwarmPaths {
  const root = join(dataDir, swarmLayout.directory);
  return {
    root,
    stateFile: join(root, swarmLayout.stateFile),
    certificates: join(root, swarmLayout.certificates),
    ca: join(root, swarmLayout.ca),
    raft: join(root, swarmLayout.raft),
  };
}

/** What a manager needs, beyond raft's own files, to start again after a restart. */
export interface ManagerState {
  readonly clusterId: string;
  readonly nodeId: string;
  readonly role: "manager";
  readonly raftId: number;
  /** "host:port" other managers reach this one at. */
  readonly advertiseAddress: string;
  /**
   * The managers known when this file was last written: raft's own log supersedes it, but
   * a restarted manager needs addresses (and peer ids) before it has replayed anything.
   */
  readonly managers: readonly ManagerMember[];
}

function parseManagerState(value: unknown, path: string): ManagerState {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new InvalidArgumentError(`${path} must hold an object`);
  const record: Record<string, unknown> = { ...value };
  if (record["format"] !== stateFormat || record["formatVersion"] !== stateFormatVersion) {
    throw new InvalidArgumentError(`${path} is not a ${stateFormat} file of version ${stateFormatVersion}`);
  }
  const { clusterId, nodeId, role, raftId, advertiseAddress, managers } = record;
  if (typeof clusterId !== "string" || !isIdentityField(clusterId)) throw new InvalidArgumentError(`${path}: clusterId is not a cluster id`);
  if (typeof nodeId !== "string" || !isIdentityField(nodeId)) throw new InvalidArgumentError(`${path}: nodeId is not a node id`);
  if (role !== "manager") throw new InvalidArgumentError(`${path}: role must be "manager"`);
  if (typeof raftId !== "number" || !Number.isSafeInteger(raftId) || raftId <= 0) throw new InvalidArgumentError(`${path}: raftId is not a positive integer`);
  if (typeof advertiseAddress !== "string" || advertiseAddress.length === 0 || advertiseAddress.length > memberAddressLengthMax) {
    throw new InvalidArgumentError(`${path}: advertiseAddress is not a "host:port"`);
  }
  return { clusterId, nodeId, role, raftId, advertiseAddress, managers: parseManagerMembers(managers, `${path}: managers`) };
}

/** Reads state.json; undefined when this node has no swarm state. FailedPreconditionError when it does not parse. */
export async function loadManagerState(paths: SwarmPaths, options: { signal?: AbortSignal } = {}): Promise<ManagerState | undefined> {
  throwIfAborted(options.signal);
  const text = await readFileIfPresent(paths.stateFile);
  if (text === undefined) return undefined;
  try {
    return parseManagerState(JSON.parse(text), paths.stateFile);
  } catch (error) {
    throw new FailedPreconditionError(
      `${paths.stateFile} is damaged (${errorMessage(error)}): restore it from a backup, or remove ${paths.root} and join the swarm again`,
      { cause: error },
    );
  }
}

/** Writes state.json atomically (fsynced file and directory). */
export async function saveManagerState(paths: SwarmPaths, state: ManagerState, options: { signal?: AbortSignal } = {}): Promise<void> {
  throwIfAborted(options.signal);
  await mkdir(paths.root, { recursive: true, mode: 0o700 });
  const text = `${JSON.stringify({ format: stateFormat, formatVersion: stateFormatVersion, ...state }, null, 2)}\n`;
  await writeFileAtomic(paths.stateFile, text, { mode: privateFileMode });
  await syncDirectory(paths.root);
}
