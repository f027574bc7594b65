import { FailedPreconditionError, InvalidArgumentError, UnavailableError } from "../../../common/errors.js";
import { lastErrorLine, runCommand } from "../../../common/command.js";

export type OciRuntimeName = "runc" | "crun";
export type OciContainerStatus = "creating" | "created" | "running" | "paused" | "stopped";

export interface OciContainerState {
  status: OciContainerStatus;
  pid: number;
}

/** One OCI runtime binary with its own state root (per daemon, so daemons never collide). */
export interface OciRuntime {
  readonly name: OciRuntimeName;
  readonly path: string;
  readonly version: string;
  /** `--root`: where the runtime keeps container state. */
  readonly root: string;
  /** Global arguments every invocation needs (`--root`), also handed to conmon. */
  readonly globalArgs: readonly string[];
  /** Sends a signal to the init process; NotFound-like failures are reported, not thrown. */
  kill(id: string, signal: string, options?: { signal?: AbortSignal }): Promise<{ delivered: boolean }>;
  /** Deletes the runtime's record and cgroups of a stopped container (force kills first). */
  delete(id: string, options?: { force?: boolean; signal?: AbortSignal }): Promise<void>;
  /** The runtime's view of a container, or null when it does not know the id. */
  state(id: string, options?: { signal?: AbortSignal }): Promise<OciContainerState | null>;
}

const statuses: readonly OciContainerStatus[] = ["creating", "created", "running", "paused", "stopped"];

/** Parses `runc state` output; the runtime is outside our process, so its JSON is checked. */
export function parseOciState(text: string): OciContainerState {
  const parsed: unknown = JSON.parse(text);
  if (typeof parsed !== "object" || parsed === null) {
    throw new UnavailableError("the OCI runtime printed a state that is not a JSON object");
  }
  const status = "status" in parsed ? parsed.status : undefined;
  const pid = "pid" in parsed ? parsed.pid : undefined;
  const known = statuses.find((item) => item === status);
  if (known === undefined || typeof pid !== "number") {
    throw new UnavailableError(`the OCI runtime printed an unknown state: ${text.slice(0, 200)}`);
  }
  return { status: known, pid };
}

function isNotExist(stderr: string): boolean {
  return /does not exist|not found|No such file/i.test(stderr);
}

class OciRuntimeImpl implements OciRuntime {
  readonly globalArgs: readonly string[];

  constructor(
    readonly name: OciRuntimeName,
    readonly path: string,
    readonly version: string,
    readonly root: string,
  ) {
    this.globalArgs = ["--root", root];
  }

  async kill(id: string, signal: string, options: { signal?: AbortSignal } = {}): Promise<{ delivered: boolean }> {
    if (!/^(SIG)?[A-Z0-9+-]+$/.test(signal)) throw new InvalidArgumentError(`invalid signal "${signal}"`);
    const result = await runCommand(this.path, [...this.globalArgs, "kill", id, signal], options);
    if (result.code === 0) return { delivered: true };
    // The process may have exited between our check and the kill: that is not an error.
    if (isNotExist(result.stderr) || /not running|container not running|process already finished/i.test(result.stderr)) {
      return { delivered: false };
    }
    throw new FailedPreconditionError(`${this.name} kill ${signal} failed: ${lastErrorLine(result.stderr)}`);
  }

  async delete(id: string, options: { force?: boolean; signal?: AbortSignal } = {}): Promise<void> {
    const args = [...this.globalArgs, "delete", ...(options.force === true ? ["--force"] : []), id];
    const result = await runCommand(this.path, args, options.signal === undefined ? {} : { signal: options.signal });
    if (result.code !== 0 && !isNotExist(result.stderr)) {
      throw new FailedPreconditionError(`${this.name} delete failed: ${lastErrorLine(result.stderr)}`);
    }
  }

  async state(id: string, options: { signal?: AbortSignal } = {}): Promise<OciContainerState | null> {
    const result = await runCommand(this.path, [...this.globalArgs, "state", id], options);
    if (result.code !== 0) {
      if (isNotExist(result.stderr)) return null;
      throw new UnavailableError(`${this.name} state failed: ${lastErrorLine(result.stderr)}`);
    }
    return parseOciState(result.stdout);
  }
}

export function createOciRuntime(options: {
  name: OciRuntimeName;
  path: string;
  version: string;
  root: string;
}): OciRuntime {
  return new OciRuntimeImpl(options.name, options.path, options.version, options.root);
}
