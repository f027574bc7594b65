import { stat } from "node:fs/promises";

import { InvalidArgumentError } from "../../common/errors.js";
import type { MountRequest } from "../volumes/mounts.js";
import type { VolumeService } from "../volumes/volumes.js";
import { resolveArgs, resolveEnv, resolveWorkingDir } from "./spec/process.js";
import { buildOciSpec, type NetworkNamespace } from "./spec/spec.js";
import type { OciMount, OciProcess, OciSpec } from "./spec/types.js";
import { defaultCapabilities } from "./spec/defaults.js";
import { resolveUser, type AccountFiles } from "./spec/user.js";
import type { ContainerRecord } from "./types.js";

/** Checks that a bind mount's host path exists, with the message Docker users expect. */
export async function checkBindSource(source: string): Promise<void> {
  try {
    await stat(source);
  } catch {
    throw new InvalidArgumentError(`invalid mount: bind source path does not exist: ${source}`);
  }
}

/** Turns a container's volume, bind and tmpfs requests into OCI mounts on host paths. */
export async function resolveMounts(mounts: readonly MountRequest[], volumes: VolumeService): Promise<OciMount[]> {
  const result: OciMount[] = [];
  for (const mount of mounts) {
    switch (mount.type) {
      case "volume": {
        const volume = await volumes.ensure(mount.name);
        result.push({
          destination: mount.target,
          type: "bind",
          source: volume.mountpoint,
          options: ["rbind", "rprivate", mount.readOnly ? "ro" : "rw"],
        });
        break;
      }
      case "bind":
        await checkBindSource(mount.source);
        result.push({ destination: mount.target, type: "bind", source: mount.source, options: ["rbind", "rprivate", mount.readOnly ? "ro" : "rw"] });
        break;
      case "tmpfs":
        result.push({
          destination: mount.target,
          type: "tmpfs",
          source: "tmpfs",
          options: ["nosuid", "nodev", "mode=1777", ...(mount.sizeBytes === null ? [] : [`size=${mount.sizeBytes}`])],
        });
        break;
    }
  }
  return result;
}

/** The user and environment of a process in this container (init or exec). */
function resolveProcessIdentity(options: {
  record: ContainerRecord;
  accounts: AccountFiles;
  user?: string;
  extraEnv?: readonly string[];
}): { user: OciProcess["user"]; env: string[] } {
  const { record } = options;
  const { user, home } = resolveUser(options.accounts, options.user ?? record.user ?? record.imageConfig.user);
  const env = resolveEnv({
    image: record.imageConfig.env,
    overrides: [...record.env, ...(options.extraEnv ?? [])],
    hostname: record.hostname,
    home,
  });
  return { user, env };
}

/** The container's config.json for the OCI runtime. */
export function buildContainerSpec(options: {
  record: ContainerRecord;
  /** The bundle's root directory, and the mounts the runtime makes on it (see SpecInput). */
  rootfs: string;
  rootfsMounts: readonly OciMount[];
  /** The container's /etc/passwd and /etc/group, for its user. */
  accounts: AccountFiles;
  networkNamespace: NetworkNamespace;
  mounts: readonly OciMount[];
  cgroupsPath: string;
  nofileDefault: number;
}): OciSpec {
  const { record } = options;
  const overrides = {
    ...(record.entrypoint === null ? {} : { entrypoint: record.entrypoint }),
    ...(record.cmd === null ? {} : { cmd: record.cmd }),
    ...(record.workingDir === null ? {} : { workingDir: record.workingDir }),
  };
  const { user, env } = resolveProcessIdentity({ record, accounts: options.accounts });
  return buildOciSpec({
    hostname: record.hostname,
    rootfsPath: options.rootfs,
    rootfsMounts: options.rootfsMounts,
    readonlyRootfs: record.readonlyRootfs,
    args: resolveArgs(record.imageConfig, overrides),
    env,
    cwd: resolveWorkingDir(record.imageConfig, overrides),
    user,
    networkNamespace: options.networkNamespace,
    extraMounts: options.mounts,
    resources: { ...record.resources, nofile: record.resources.nofile ?? options.nofileDefault },
    cgroupsPath: options.cgroupsPath,
  });
}

/** The process of an exec: the container's confinement with the caller's command. */
export function buildExecProcess(options: {
  record: ContainerRecord;
  /** The running container's /etc/passwd and /etc/group, for the exec's user. */
  accounts: AccountFiles;
  cmd: readonly string[];
  env?: readonly string[];
  user?: string;
  workingDir?: string;
  nofileDefault: number;
}): OciProcess {
  const { record } = options;
  if (options.cmd.length === 0) throw new InvalidArgumentError("exec needs a command");
  const identity = resolveProcessIdentity({
    record,
    accounts: options.accounts,
    ...(options.user === undefined ? {} : { user: options.user }),
    ...(options.env === undefined ? {} : { extraEnv: options.env }),
  });
  const cwd = resolveWorkingDir(record.imageConfig, {
    ...(options.workingDir === undefined ? (record.workingDir === null ? {} : { workingDir: record.workingDir }) : { workingDir: options.workingDir }),
  });
  const capabilities = [...defaultCapabilities];
  const nofile = record.resources.nofile ?? options.nofileDefault;
  return {
    terminal: false,
    user: identity.user,
    args: [...options.cmd],
    env: identity.env,
    cwd,
    capabilities: { bounding: capabilities, effective: [...capabilities], permitted: [...capabilities] },
    rlimits: [{ type: "RLIMIT_NOFILE", hard: nofile, soft: nofile }],
    noNewPrivileges: true,
  };
}
