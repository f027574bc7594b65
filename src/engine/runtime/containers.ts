import { channel } from "node:diagnostics_channel";
import { watch, type FSWatcher } from "node:fs";
import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";

import type { Clock } from "../../common/clock.js";
import type { Logger } from "../../common/logger.js";
import {
  AlreadyExistsError,
  CancelledError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  UnavailableError,
  errorMessage,
  throwIfAborted,
} from "../../common/errors.js";
import type { NetworkManager } from "../network/network.js";
import type { VolumeService } from "../volumes/volumes.js";
import { checkMountTargetsUnique } from "../volumes/mounts.js";
import { ContainerAccountFiles } from "./accounts.js";
import { buildExecProcess, checkBindSource } from "./container-spec.js";
import { startExec, type ExecOptions, type ExecSession } from "./exec.js";
import { readContainerLog, type LogEntry, type LogReadOptions } from "./logs.js";
import { readCgroupStats, readOomKillCount } from "./oci/cgroups.js";
import type { OciRuntime } from "./oci/runtime.js";
import { unmountRootfs } from "./rootfs-mount.js";
import { OperationLock, RunSession } from "./session.js";
import { resolveArgs } from "./spec/process.js";
import { validateResourceLimits } from "./spec/spec.js";
import { readAccountFiles } from "./spec/user.js";
import { startContainerRun } from "./start.js";
import { ContainerStore, containerIdPattern, createdState } from "./store.js";
import type {
  ContainerCreateRequest,
  ContainerInfo,
  ContainerRecord,
  ContainerState,
  ContainerStats,
  ExitStatus,
  ImageConfigSource,
  RootfsProvider,
} from "./types.js";

/** Containers per engine: each holds a directory, maybe mounts, a conmon and a netns. */
export const containersMax = 4096;
/** How long to wait for a container to die after SIGKILL before reporting it stuck. */
export const killWaitMs = 10_000;
/** Reads of an exit file that conmon has created but not yet filled. */
export const exitFileReadsMax = 50;
const exitFileRetryMs = 2;
/** Observability: `{ id, pid }` when a container starts, `{ id, exitCode, oomKilled }` when its exit is recorded. */
export const containerStartedChannel = channel("shoal:engine:container-started");
export const containerExitedChannel = channel("shoal:engine:container-exited");
const namePattern = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;
/** What may be a short container id: three hex digits or more. */
const idPrefixPattern = /^[0-9a-f]{3,64}$/;
const signalPattern = /^(SIG)?[A-Z0-9+-]{1,16}$/;

export interface ContainerServiceOptions {
  /** `<data-dir>/engine/containers`: records, states and logs. */
  root: string;
  /** `<run-dir>/engine/containers`: bundles and conmon's files (see ContainerPaths). */
  runRoot: string;
  /** Where conmon writes `<id>` files holding exit codes (one watch for all containers). */
  exitDirectory: string;
  socketDirectory: string;
  /** `/shoal-<daemon id>`: containers' cgroups go below it. */
  cgroupParent: string;
  conmonPath: string;
  runtime: OciRuntime;
  rootfs: RootfsProvider;
  images: ImageConfigSource;
  network: NetworkManager;
  volumes: VolumeService;
  logger: Logger;
  clock: Clock;
  randomBytes: (size: number) => Buffer;
  /** RLIMIT_NOFILE for containers that do not set one. */
  nofileDefault: number;
}

/**
 * The high-level container runtime: Docker's lifecycle on top of an OCI runtime under
 * conmon. Containers are addressed by id, unique id prefix or name. State is persisted
 * per container so that a new service on the same directories re-attaches to running
 * containers (conmon keeps them alive while no daemon runs).
 */
export interface ContainerService {
  /** Records a container and prepares its rootfs. NotFoundError for an unknown image. */
  create(request: ContainerCreateRequest, options?: { signal?: AbortSignal }): Promise<{ id: string; name: string }>;
  /** Starts a created or exited container; a running one is left alone. */
  start(reference: string, options?: { signal?: AbortSignal }): Promise<void>;
  /** Stop signal, then SIGKILL after the grace period. A stopped container is left alone. */
  stop(reference: string, options?: { timeoutSeconds?: number; signal?: AbortSignal }): Promise<void>;
  /** Sends a signal (SIGKILL by default). FailedPreconditionError unless running. */
  kill(reference: string, options?: { killSignal?: string; signal?: AbortSignal }): Promise<void>;
  /** Waits until the container is not running and returns how its last run ended. */
  wait(reference: string, options?: { signal?: AbortSignal }): Promise<ExitStatus>;
  restart(reference: string, options?: { timeoutSeconds?: number; signal?: AbortSignal }): Promise<void>;
  /** Deletes a container. FailedPreconditionError while running unless `force`. */
  remove(reference: string, options?: { force?: boolean; signal?: AbortSignal }): Promise<void>;
  /**
   * Read-only (frozen) snapshots: later changes to a container do not show in them. With
   * `all`, containers being removed too (`removing`), as `docker ps -a` shows them until
   * their files are gone.
   */
  list(options?: { all?: boolean }): ContainerInfo[];
  /** A read-only (frozen) snapshot, as list's. */
  inspect(reference: string): ContainerInfo;
  logs(reference: string, options?: LogReadOptions): AsyncIterable<LogEntry>;
  /** Starts a process in a running container. */
  exec(reference: string, options: ExecOptions): Promise<ExecSession>;
  stats(reference: string, options?: { signal?: AbortSignal }): Promise<ContainerStats>;
  /** Ids of containers that mount the named volume (for volume rm). */
  volumeUsers(name: string): string[];
  /** Stops watching exits and finishes in-flight bookkeeping; containers keep running. */
  close(): Promise<void>;
}

interface Entry {
  record: ContainerRecord;
  state: ContainerState;
  run: RunSession | null;
  lock: OperationLock;
  removing: boolean;
  /**
   * Created by this service and never started: no earlier run can have left a rootfs mount
   * or conmon's files behind, so the first start skips looking for them.
   */
  fresh: boolean;
  /**
   * The rootfs may be mounted on the host: the runtime mounts it inside the container, and
   * the host sees it only while a start reads the account files (ContainerAccountFiles).
   * True after a start that failed, or for a container loaded from disk (the daemon may have
   * crashed in that moment); then a teardown or removal looks in mountinfo, which grows
   * with containers, and unmounts it.
   */
  mayBeMounted: boolean;
}

/**
 * Freezes a record or state and everything in it. Both are replaced, never changed in
 * place, so list and inspect can hand out the objects themselves: `docker ps` polling a
 * node with hundreds of containers would otherwise deep-copy every one of them each time.
 */
function frozen<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const item of Object.values(value)) frozen(item);
  }
  return value;
}

class ContainerServiceImpl implements ContainerService {
  readonly #options: ContainerServiceOptions;
  readonly #logger: Logger;
  readonly #store: ContainerStore;
  readonly #entries = new Map<string, Entry>();
  /** Name -> id of every entry: the worker looks its task containers up by name. */
  readonly #names = new Map<string, string>();
  readonly #reaps = new Set<Promise<void>>();
  readonly #accounts = new ContainerAccountFiles();
  #watcher: FSWatcher | null = null;
  #closed = false;

  constructor(options: ContainerServiceOptions) {
    this.#options = options;
    this.#logger = options.logger.child({ component: "containers" });
    this.#store = new ContainerStore({ data: options.root, run: options.runRoot });
  }

  /** Loads stored containers, watches exits, and re-attaches to the ones still running. */
  async init(): Promise<void> {
    await this.#store.init();
    this.#watcher = watch(this.#options.exitDirectory, (_event, filename) => {
      if (typeof filename === "string") this.#onExitFile(filename);
    });
    this.#watcher.on("error", (error) => this.#logger.error({ err: error }, "exit directory watch failed"));
    const { loaded, broken } = await this.#store.load();
    for (const item of broken) {
      this.#logger.error({ containerId: item.id, err: item.error }, "container files unreadable; left on disk");
    }
    for (const { record, state } of loaded) {
      this.#add({ record, state, run: null, lock: new OperationLock(), removing: false, fresh: false, mayBeMounted: true });
    }
    for (const entry of this.#entries.values()) {
      if (entry.state.status === "running") await this.#reattach(entry);
    }
  }

  async #reattach(entry: Entry): Promise<void> {
    const { id } = entry.record;
    const session = new RunSession();
    entry.run = session;
    session.markReady(true);
    if (entry.state.network !== null) this.#options.network.restore(id, entry.state.network);
    const runtimeState = await this.#options.runtime.state(id).catch((error: unknown) => {
      this.#logger.warn({ containerId: id, err: error }, "cannot query the runtime; assuming the container stopped");
      return null;
    });
    if (runtimeState !== null && (runtimeState.status === "running" || runtimeState.status === "paused")) {
      this.#logger.info({ containerId: id, pid: runtimeState.pid }, "re-attached to running container");
      // It may have exited between our load and the watch: the exit file tells.
      if (await this.#exitFileExists(id)) this.#onExitFile(id);
      return;
    }
    this.#onExitFile(id);
  }

  async #exitFileExists(id: string): Promise<boolean> {
    try {
      await readFile(join(this.#options.exitDirectory, id));
      return true;
    } catch {
      return false;
    }
  }

  #onExitFile(name: string): void {
    if (!containerIdPattern.test(name)) return;
    const entry = this.#entries.get(name);
    const session = entry?.run;
    if (entry === undefined || session === null || session === undefined || session.reaping) return;
    session.reaping = true;
    const reap = this.#reap(entry, session)
      .catch((error: unknown) => this.#logger.error({ containerId: name, err: error }, "recording a container exit failed"))
      .finally(() => this.#reaps.delete(reap));
    this.#reaps.add(reap);
  }

  async #readExitCode(id: string): Promise<{ exitCode: number; error: string }> {
    const candidates = [join(this.#options.exitDirectory, id), join(this.#store.paths(id).conmon, "exit")];
    for (let attempt = 0; attempt < exitFileReadsMax; attempt += 1) {
      for (const path of candidates) {
        const text = await readFile(path, "utf8").catch(() => "");
        if (/^-?\d+\s*$/.test(text)) return { exitCode: Number(text.trim()), error: "" };
      }
      // conmon creates the file and fills it in two steps; give it a moment.
      await this.#options.clock.sleep(exitFileRetryMs);
    }
    return { exitCode: 255, error: "exit code lost: the container's monitor (conmon) ended without recording it" };
  }

  async #reap(entry: Entry, session: RunSession): Promise<void> {
    if (!(await session.ready)) return;
    const { id } = entry.record;
    let status: ExitStatus = { exitCode: 255, oomKilled: false };
    try {
      const paths = this.#store.paths(id);
      const cgroupsPath = `${this.#options.cgroupParent}/${id}`;
      const [{ exitCode, error }, oomFile] = await Promise.all([
        this.#readExitCode(id),
        readFile(join(paths.conmon, "oom")).then(
          () => true,
          () => false,
        ),
      ]);
      // conmon's oom file, or the cgroup's own count (read before runtime delete removes it).
      status = { exitCode, oomKilled: oomFile || (exitCode === 137 && (await readOomKillCount(cgroupsPath)) > 0) };
      const problems = error === "" ? [] : [error];
      await this.#teardown(entry, problems);
      entry.state = {
        ...entry.state,
        status: "exited",
        pid: 0,
        finishedAt: new Date(this.#options.clock.now()).toISOString(),
        ...status,
        error: problems.join("; "),
        network: null,
      };
      // The exit is in the state file either way; conmon's persist-dir copy stays for restarts.
      await Promise.all([this.#store.writeState(id, entry.state), rm(join(this.#options.exitDirectory, id), { force: true })]);
    } finally {
      // Waiters are released even when bookkeeping failed (it is logged by the caller).
      entry.run = null;
      session.markExited(status);
      containerExitedChannel.publish({ id, ...status });
    }
  }

  /** Releases what a run holds (runtime record and cgroups, network, rootfs mount). */
  async #teardown(entry: Entry, problems: string[]): Promise<void> {
    const { id } = entry.record;
    const steps: [string, () => Promise<void>][] = [
      ["runtime delete", () => this.#options.runtime.delete(id, { force: true })],
      ["network", async () => (entry.state.network === null ? undefined : await this.#options.network.detach(id, entry.state.network))],
      ["rootfs unmount", () => this.#unmountLeftover(entry)],
    ];
    // Independent once the container's processes are gone: run them side by side.
    const results = await Promise.allSettled(steps.map(async ([, step]) => await step()));
    results.forEach((result, index) => {
      if (result.status === "fulfilled") return;
      const what = steps[index]?.[0] ?? "teardown";
      this.#logger.error({ containerId: id, err: result.reason }, `${what} failed after exit`);
      problems.push(`${what}: ${errorMessage(result.reason)}`);
    });
  }

  /** Unmounts the rootfs where a start may have left it mounted on the host (see Entry.mayBeMounted). */
  async #unmountLeftover(entry: Entry): Promise<void> {
    if (!entry.mayBeMounted) return;
    await unmountRootfs(this.#store.paths(entry.record.id).rootfs);
    entry.mayBeMounted = false;
  }

  /** By id, then by name (as Docker: a name wins over an id prefix), then by unique id prefix. */
  #find(reference: string): Entry {
    const direct = this.#entries.get(reference);
    if (direct !== undefined && !direct.removing) return direct;
    const named = this.#entries.get(this.#names.get(reference) ?? "");
    if (named !== undefined && !named.removing) return named;
    const matches = idPrefixPattern.test(reference) ? [...this.#entries.values()].filter((entry) => !entry.removing && entry.record.id.startsWith(reference)) : [];
    if (matches.length === 1 && matches[0] !== undefined) return matches[0];
    if (matches.length > 1) throw new InvalidArgumentError(`container reference "${reference}" is ambiguous: give more of the id`);
    throw new NotFoundError(`no such container: ${reference}`);
  }

  #checkOpen(): void {
    if (this.#closed) throw new UnavailableError("the container service is closed");
  }

  async create(request: ContainerCreateRequest, options: { signal?: AbortSignal } = {}): Promise<{ id: string; name: string }> {
    this.#checkOpen();
    throwIfAborted(options.signal);
    if (this.#entries.size >= containersMax) {
      throw new FailedPreconditionError(`too many containers (${containersMax}): remove some first`);
    }
    const id = this.#options.randomBytes(32).toString("hex");
    const name = request.name ?? `shoal_${id.slice(0, 12)}`;
    await this.#validateRequest(request, name);
    const image = await this.#options.images.get(request.image, options);
    const record = this.#buildRecord(request, { id, name, imageId: image.id, imageConfig: image.config });
    resolveArgs(record.imageConfig, { ...(record.entrypoint === null ? {} : { entrypoint: record.entrypoint }), ...(record.cmd === null ? {} : { cmd: record.cmd }) });
    const state = createdState();
    const entry: Entry = { record, state, run: null, lock: new OperationLock(), removing: false, fresh: true, mayBeMounted: false };
    // Reserve the name before the first await that could interleave another create.
    if (this.#nameTaken(name)) throw new AlreadyExistsError(`the container name "${name}" is already in use: choose another`);
    this.#add(entry);
    try {
      // Independent: the container's files and its rootfs snapshot. Both settle before any cleanup.
      const made = await Promise.allSettled([this.#store.create(record), this.#options.rootfs.prepare(id, record.imageId, options)]);
      for (const result of made) if (result.status === "rejected") throw result.reason;
      for (const mount of record.mounts) if (mount.type === "volume") await this.#options.volumes.ensure(mount.name);
    } catch (error) {
      this.#forget(entry);
      await this.#options.rootfs.remove(id).catch((cleanup: unknown) => this.#logger.error({ err: cleanup }, "rootfs cleanup failed"));
      await this.#store.remove(id);
      throw error;
    }
    return { id, name };
  }

  #nameTaken(name: string): boolean {
    return this.#names.has(name);
  }

  #add(entry: Entry): void {
    this.#entries.set(entry.record.id, entry);
    this.#names.set(entry.record.name, entry.record.id);
  }

  #forget(entry: Entry): void {
    this.#entries.delete(entry.record.id);
    if (this.#names.get(entry.record.name) === entry.record.id) this.#names.delete(entry.record.name);
  }

  async #validateRequest(request: ContainerCreateRequest, name: string): Promise<void> {
    if (!namePattern.test(name)) {
      throw new InvalidArgumentError(`invalid container name "${name}": use letters, digits, '_', '.' or '-', starting with a letter or digit`);
    }
    if (this.#nameTaken(name)) throw new AlreadyExistsError(`the container name "${name}" is already in use: choose another`);
    if (request.stopSignal !== undefined && !signalPattern.test(request.stopSignal)) {
      throw new InvalidArgumentError(`invalid stop signal "${request.stopSignal}"`);
    }
    const mode = request.networkMode ?? "bridge";
    if (mode !== "bridge" && (request.portBindings?.length ?? 0) > 0) {
      throw new InvalidArgumentError(`published ports need the bridge network; this container uses "${mode}"`);
    }
    if (request.hostname !== undefined && !/^[a-zA-Z0-9][a-zA-Z0-9.-]{0,62}$/.test(request.hostname)) {
      throw new InvalidArgumentError(`invalid hostname "${request.hostname}"`);
    }
    validateResourceLimits(request.resources ?? {});
    const mounts = request.mounts ?? [];
    checkMountTargetsUnique(mounts);
    for (const mount of mounts) if (mount.type === "bind") await checkBindSource(mount.source);
  }

  #buildRecord(
    request: ContainerCreateRequest,
    base: Pick<ContainerRecord, "id" | "name" | "imageId" | "imageConfig">,
  ): ContainerRecord {
    return {
      ...base,
      imageConfig: {
        entrypoint: [...base.imageConfig.entrypoint],
        cmd: [...base.imageConfig.cmd],
        env: [...base.imageConfig.env],
        workingDir: base.imageConfig.workingDir,
        user: base.imageConfig.user,
        stopSignal: base.imageConfig.stopSignal,
      },
      createdAt: new Date(this.#options.clock.now()).toISOString(),
      image: request.image,
      entrypoint: request.entrypoint === undefined ? null : [...request.entrypoint],
      cmd: request.cmd === undefined ? null : [...request.cmd],
      env: [...(request.env ?? [])],
      user: request.user ?? null,
      workingDir: request.workingDir ?? null,
      hostname: request.hostname ?? base.id.slice(0, 12),
      labels: { ...request.labels },
      stopSignal: request.stopSignal ?? base.imageConfig.stopSignal ?? "SIGTERM",
      stopTimeoutSeconds: request.stopTimeoutSeconds ?? 10,
      networkMode: request.networkMode ?? "bridge",
      portBindings: [...(request.portBindings ?? [])],
      mounts: [...(request.mounts ?? [])],
      resources: { ...request.resources },
      readonlyRootfs: request.readonlyRootfs ?? false,
    };
  }

  async start(reference: string, options: { signal?: AbortSignal } = {}): Promise<void> {
    this.#checkOpen();
    throwIfAborted(options.signal);
    const entry = this.#find(reference);
    await entry.lock.run(async () => {
      if (entry.removing) throw new NotFoundError(`no such container: ${reference}`);
      if (entry.state.status === "running") return;
      const session = new RunSession();
      entry.run = session;
      const { fresh, mayBeMounted } = entry;
      entry.fresh = false;
      entry.mayBeMounted = true;
      try {
        entry.state = await startContainerRun({ ...this.#options, store: this.#store, accounts: this.#accounts, entry, fresh, mayBeMounted, signal: options.signal });
        entry.mayBeMounted = false;
      } catch (error) {
        entry.run = null;
        session.markReady(false);
        entry.state = { ...entry.state, error: errorMessage(error) };
        await this.#store.writeState(entry.record.id, entry.state);
        throw error;
      }
      try {
        await this.#store.writeState(entry.record.id, entry.state);
      } finally {
        // It runs whether or not its state reached the disk: keep managing it.
        session.markReady(true);
        containerStartedChannel.publish({ id: entry.record.id, pid: entry.state.pid });
      }
    });
  }

  async stop(reference: string, options: { timeoutSeconds?: number; signal?: AbortSignal } = {}): Promise<void> {
    this.#checkOpen();
    const entry = this.#find(reference);
    const session = entry.run;
    if (session === null || !(await session.ready)) return;
    const timeoutSeconds = options.timeoutSeconds ?? entry.record.stopTimeoutSeconds;
    if (!Number.isFinite(timeoutSeconds) || timeoutSeconds < 0) {
      throw new InvalidArgumentError(`invalid stop timeout ${timeoutSeconds}: use a number of seconds >= 0`);
    }
    await this.#options.runtime.kill(entry.record.id, entry.record.stopSignal, options);
    if (await this.#waitExit(session, timeoutSeconds * 1000, options.signal)) return;
    this.#logger.info({ containerId: entry.record.id }, "grace period over; sending SIGKILL");
    await this.#options.runtime.kill(entry.record.id, "SIGKILL", options);
    if (!(await this.#waitExit(session, killWaitMs, options.signal))) {
      throw new UnavailableError(`container ${entry.record.id.slice(0, 12)} did not exit ${killWaitMs} ms after SIGKILL`);
    }
  }

  /** True when the run ended within `ms`; false on timeout. */
  async #waitExit(session: RunSession, ms: number, signal: AbortSignal | undefined): Promise<boolean> {
    const timer = new AbortController();
    const abortTimer = (): void => timer.abort();
    signal?.addEventListener("abort", abortTimer, { once: true });
    try {
      const exited = session.exited.then(() => true);
      const timedOut = this.#options.clock.sleep(ms, { signal: timer.signal }).then(
        () => false,
        () => true,
      );
      const result = await Promise.race([exited, timedOut]);
      throwIfAborted(signal);
      return result;
    } finally {
      timer.abort();
      signal?.removeEventListener("abort", abortTimer);
    }
  }

  async kill(reference: string, options: { killSignal?: string; signal?: AbortSignal } = {}): Promise<void> {
    this.#checkOpen();
    const entry = this.#find(reference);
    const killSignal = options.killSignal ?? "SIGKILL";
    if (!signalPattern.test(killSignal)) throw new InvalidArgumentError(`invalid signal "${killSignal}"`);
    if (entry.run === null || !(await entry.run.ready)) {
      throw new FailedPreconditionError(`container ${entry.record.name} is not running`);
    }
    await this.#options.runtime.kill(entry.record.id, killSignal, options);
  }

  async wait(reference: string, options: { signal?: AbortSignal } = {}): Promise<ExitStatus> {
    const entry = this.#find(reference);
    const session = entry.run;
    if (session !== null && (await session.ready)) {
      const { signal } = options;
      if (signal === undefined) return await session.exited;
      throwIfAborted(signal);
      let onAbort = (): void => {};
      const aborted = new Promise<never>((_, reject) => {
        onAbort = () => reject(new CancelledError("wait cancelled", { cause: signal.reason }));
        signal.addEventListener("abort", onAbort, { once: true });
      });
      try {
        return await Promise.race([session.exited, aborted]);
      } finally {
        signal.removeEventListener("abort", onAbort);
      }
    }
    return { exitCode: entry.state.exitCode ?? 0, oomKilled: entry.state.oomKilled };
  }

  async restart(reference: string, options: { timeoutSeconds?: number; signal?: AbortSignal } = {}): Promise<void> {
    await this.stop(reference, options);
    const entry = this.#find(reference);
    entry.state = { ...entry.state, restartCount: entry.state.restartCount + 1 };
    await this.start(reference, options.signal === undefined ? {} : { signal: options.signal });
  }

  async remove(reference: string, options: { force?: boolean; signal?: AbortSignal } = {}): Promise<void> {
    this.#checkOpen();
    const entry = this.#find(reference);
    if (entry.run !== null) {
      if (options.force !== true) {
        throw new FailedPreconditionError(`container ${entry.record.name} is running: stop it first or remove it with force`);
      }
      await this.#options.runtime.kill(entry.record.id, "SIGKILL", options);
      if (!(await this.#waitExit(entry.run, killWaitMs, options.signal))) {
        throw new UnavailableError(`container ${entry.record.id.slice(0, 12)} did not exit ${killWaitMs} ms after SIGKILL`);
      }
    }
    await entry.lock.run(async () => {
      if (entry.removing) return;
      if (entry.run !== null) throw new FailedPreconditionError(`container ${entry.record.name} was started again; not removed`);
      entry.removing = true;
      const { id } = entry.record;
      try {
        // The directory goes next, with `rm -r`: nothing may stay mounted in it.
        await this.#unmountLeftover(entry);
        await this.#options.rootfs.remove(id, options);
        await this.#store.remove(id);
        await rm(join(this.#options.exitDirectory, id), { force: true });
      } catch (error) {
        entry.removing = false;
        throw error;
      }
      this.#forget(entry);
    });
  }

  list(options: { all?: boolean } = {}): ContainerInfo[] {
    return [...this.#entries.values()]
      .filter((entry) => options.all === true || (!entry.removing && entry.state.status === "running"))
      .sort((left, right) => right.record.createdAt.localeCompare(left.record.createdAt))
      .map((entry) => this.#info(entry));
  }

  inspect(reference: string): ContainerInfo {
    return this.#info(this.#find(reference));
  }

  #info(entry: Entry): ContainerInfo {
    const paths = this.#store.paths(entry.record.id);
    return { record: frozen(entry.record), state: frozen(entry.state), removing: entry.removing, logPath: paths.log, bundlePath: paths.bundle };
  }

  logs(reference: string, options: LogReadOptions = {}): AsyncIterable<LogEntry> {
    const entry = this.#find(reference);
    const session = entry.run;
    const done = async (): Promise<void> => {
      if (session !== null) await session.exited;
    };
    return readContainerLog(this.#store.paths(entry.record.id).log, options, done);
  }

  async exec(reference: string, options: ExecOptions): Promise<ExecSession> {
    this.#checkOpen();
    const entry = this.#find(reference);
    if (entry.run === null || !(await entry.run.ready)) {
      throw new FailedPreconditionError(`container ${entry.record.name} is not running: start it before exec`);
    }
    const paths = this.#store.paths(entry.record.id);
    const process = buildExecProcess({
      record: entry.record,
      // The container's own view of its files, through its init's root.
      accounts: readAccountFiles(`/proc/${entry.state.pid}/root`),
      nofileDefault: this.#options.nofileDefault,
      ...options,
    });
    return await startExec({
      runtime: this.#options.runtime,
      containerId: entry.record.id,
      process,
      scratchDirectory: paths.runDirectory,
      stdin: options.stdin ?? false,
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
  }

  async stats(reference: string, options: { signal?: AbortSignal } = {}): Promise<ContainerStats> {
    throwIfAborted(options.signal);
    const entry = this.#find(reference);
    if (entry.run === null) throw new FailedPreconditionError(`container ${entry.record.name} is not running`);
    const stats = await readCgroupStats(`${this.#options.cgroupParent}/${entry.record.id}`);
    return { id: entry.record.id, readAt: new Date(this.#options.clock.now()).toISOString(), ...stats };
  }

  volumeUsers(name: string): string[] {
    return [...this.#entries.values()]
      .filter((entry) => entry.record.mounts.some((mount) => mount.type === "volume" && mount.name === name))
      .map((entry) => entry.record.id);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#watcher?.close();
    this.#watcher = null;
    await Promise.all([...this.#reaps]);
  }
}

export async function createContainerService(options: ContainerServiceOptions): Promise<ContainerService> {
  const service = new ContainerServiceImpl(options);
  try {
    await service.init();
  } catch (error) {
    await service.close();
    throw error;
  }
  return service;
}
