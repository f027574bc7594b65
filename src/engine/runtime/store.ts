import { mkdir, readFile, readdir, rm } from "node:fs/promises";
import { join } from "node:path";

import { InternalError, systemErrorCode } from "../../common/errors.js";
import { replaceFile } from "../../common/files.js";
import { parseContainerRecord, parseContainerState } from "./codec.js";
import type { ContainerRecord, ContainerState } from "./types.js";

/**
 * A container's files. What must outlive a reboot (record, state, log) is in `directory`,
 * under the data dir; what only one boot's run needs (the OCI bundle, conmon's files, the
 * generated /etc files, pid files) is in `runDirectory`, under the run dir, as containerd
 * keeps bundles in its state dir: a container start creates a dozen of these files, and on
 * a tmpfs they cost no disk inodes to create and delete.
 */
export interface ContainerPaths {
  directory: string;
  record: string;
  state: string;
  runDirectory: string;
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

export function containerPaths(roots: ContainerRoots, id: string): ContainerPaths {
  if (!containerIdPattern.test(id)) throw new InternalError(`invalid container id ${JSON.stringify(id)}`);
  const directory = join(roots.data, id);
  const runDirectory = join(roots.run, id);
  const bundle = join(runDirectory, "bundle");
  return {
    directory,
    record: join(directory, "config.json"),
    state: join(directory, "state.json"),
    runDirectory,
    bundle,
    rootfs: join(bundle, "rootfs"),
    spec: join(bundle, "config.json"),
    log: join(directory, "container.log"),
    conmon: join(runDirectory, "conmon"),
    etc: join(runDirectory, "etc"),
    containerPid: join(runDirectory, "container.pid"),
    conmonPid: join(runDirectory, "conmon.pid"),
  };
}

/** Where containers' files go: `data` survives reboots, `run` need not. */
export interface ContainerRoots {
  data: string;
  run: string;
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
  readonly #roots: ContainerRoots;
  /**
   * Paths of the containers on disk, built once each: a start, an exit and every inspect
   * ask for them. Entries go with the container's directory (remove).
   */
  readonly #paths = new Map<string, Readonly<ContainerPaths>>();

  constructor(roots: ContainerRoots) {
    this.#roots = roots;
  }

  paths(id: string): Readonly<ContainerPaths> {
    let paths = this.#paths.get(id);
    if (paths === undefined) {
      paths = Object.freeze(containerPaths(this.#roots, id));
      this.#paths.set(id, paths);
    }
    return paths;
  }

  async init(): Promise<void> {
    await Promise.all([mkdir(this.#roots.data, { recursive: true, mode: 0o700 }), mkdir(this.#roots.run, { recursive: true, mode: 0o700 })]);
  }

  /**
   * Creates the container's directory and writes the record; AlreadyExists is the caller's
   * check. The state file comes with the first start: until then the container is in its
   * createdState (load), which spares a file per container created.
   */
  async create(record: ContainerRecord): Promise<Readonly<ContainerPaths>> {
    const paths = this.paths(record.id);
    await mkdir(paths.directory, { mode: 0o700 });
    await replaceFile(paths.record, JSON.stringify(record), stateFileMode);
    return paths;
  }

  /**
   * Makes the run directories a start writes into. They are there after an earlier start
   * of this boot, and gone after a reboot (the run dir is a tmpfs), so every start asks.
   */
  async prepareRun(id: string): Promise<void> {
    const paths = this.paths(id);
    await mkdir(paths.rootfs, { recursive: true, mode: 0o700 });
    await Promise.all([mkdir(paths.conmon, { recursive: true }), mkdir(paths.etc, { recursive: true })]);
  }

  async writeState(id: string, state: ContainerState): Promise<void> {
    await replaceFile(this.paths(id).state, JSON.stringify(state), stateFileMode);
  }

  async remove(id: string): Promise<void> {
    const paths = this.paths(id);
    await Promise.all([rm(paths.runDirectory, { recursive: true, force: true }), rm(paths.directory, { recursive: true, force: true })]);
    this.#paths.delete(id);
  }

  /** Every stored container; a directory whose files are unreadable is reported, not skipped. */
  async load(): Promise<{ loaded: { record: ContainerRecord; state: ContainerState }[]; broken: { id: string; error: unknown }[] }> {
    const ids = (await readdir(this.#roots.data)).filter((name) => containerIdPattern.test(name));
    const loaded: { record: ContainerRecord; state: ContainerState }[] = [];
    const broken: { id: string; error: unknown }[] = [];
    for (const id of ids) {
      const paths = this.paths(id);
      try {
        const record = parseContainerRecord(await readLimited(paths.record));
        const state = await readLimited(paths.state).then(parseContainerState, (error: unknown) => {
          if (systemErrorCode(error) === "ENOENT") return createdState();
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
