import { mkdir, readFile, readdir, rm } from "node:fs/promises";
import { join } from "node:path";

import { InternalError } from "../../common/errors.js";
import { replaceFile } from "../../common/files.js";
import { parseContainerRecord, parseContainerState } from "./codec.js";
import type { ContainerRecord, ContainerState } from "./types.js";

/** A container's on-disk files. */
export interface ContainerPaths {
  directory: string;
  record: string;
  state: string;
  bundle: string;
  rootfs: string;
  spec: string;
  log: string;
  /** conmon's persist dir: `exit` and `oom` files. */
  conmon: string;
  /** Generated /etc files. */
  etc: string;
  containerPid: string;
  conmonPid: string;
}

/** Largest config.json/state.json read back. */
export const containerFileBytesMax = 1024 * 1024;

export const containerIdPattern = /^[a-f0-9]{64}$/;

export function containerPaths(root: string, id: string): ContainerPaths {
  if (!containerIdPattern.test(id)) throw new InternalError(`invalid container id ${JSON.stringify(id)}`);
  const directory = join(root, id);
  const bundle = join(directory, "bundle");
  return {
    directory,
    record: join(directory, "config.json"),
    state: join(directory, "state.json"),
    bundle,
    rootfs: join(bundle, "rootfs"),
    spec: join(bundle, "config.json"),
    log: join(directory, "container.log"),
    conmon: join(directory, "conmon"),
    etc: join(directory, "etc"),
    containerPid: join(directory, "container.pid"),
    conmonPid: join(directory, "conmon.pid"),
  };
}


async function readLimited(path: string): Promise<string> {
  const text = await readFile(path, "utf8");
  if (text.length > containerFileBytesMax) throw new InternalError(`${path} is larger than ${containerFileBytesMax} bytes`);
  return text;
}

/**
 * Container records and states are replaced atomically but not fsynced: on a crash of the
 * whole host the containers are gone too, and a start re-reads what the runtime reports.
 * No chmod either: the container directory is the daemon's alone.
 */
const stateFileMode = 0o644;

/** The state of a container never started. */
export function createdState(): ContainerState {
  return { status: "created", pid: 0, startedAt: null, finishedAt: null, exitCode: null, oomKilled: false, error: "", restartCount: 0, network: null };
}

/** Container directories on disk, each holding a record and (once started) a state. */
export class ContainerStore {
  readonly #root: string;
  /**
   * Paths of the containers on disk, built once each: a start, an exit and every inspect
   * ask for them. Entries go with the container's directory (remove).
   */
  readonly #paths = new Map<string, Readonly<ContainerPaths>>();

  constructor(root: string) {
    this.#root = root;
  }

  paths(id: string): Readonly<ContainerPaths> {
    let paths = this.#paths.get(id);
    if (paths === undefined) {
      paths = Object.freeze(containerPaths(this.#root, id));
      this.#paths.set(id, paths);
    }
    return paths;
  }

  async init(): Promise<void> {
    await mkdir(this.#root, { recursive: true, mode: 0o700 });
  }

  /**
   * Creates the directory layout and writes the record; AlreadyExists is the caller's check.
   * The state file comes with the first start: until then the container is in its
   * createdState (load), which spares a file per container created.
   */
  async create(record: ContainerRecord): Promise<Readonly<ContainerPaths>> {
    const paths = this.paths(record.id);
    await mkdir(paths.rootfs, { recursive: true, mode: 0o700 });
    await Promise.all([mkdir(paths.conmon), mkdir(paths.etc), replaceFile(paths.record, JSON.stringify(record), stateFileMode)]);
    return paths;
  }

  async writeState(id: string, state: ContainerState): Promise<void> {
    await replaceFile(this.paths(id).state, JSON.stringify(state), stateFileMode);
  }

  async remove(id: string): Promise<void> {
    await rm(this.paths(id).directory, { recursive: true, force: true });
    this.#paths.delete(id);
  }

  /** Every stored container; a directory whose files are unreadable is reported, not skipped. */
  async load(): Promise<{ loaded: { record: ContainerRecord; state: ContainerState }[]; broken: { id: string; error: unknown }[] }> {
    const ids = (await readdir(this.#root)).filter((name) => containerIdPattern.test(name));
    const loaded: { record: ContainerRecord; state: ContainerState }[] = [];
    const broken: { id: string; error: unknown }[] = [];
    for (const id of ids) {
      const paths = this.paths(id);
      try {
        const record = parseContainerRecord(await readLimited(paths.record));
        const state = await readLimited(paths.state).then(parseContainerState, (error: unknown) => {
          if (error instanceof Error && "code" in error && error.code === "ENOENT") return createdState();
          throw error;
        });
        loaded.push({ record, state });
      } catch (error) {
        broken.push({ id, error });
      }
    }
    return { loaded, broken };
  }
}
