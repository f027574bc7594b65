import { mkdir, readdir, statfs } from "node:fs/promises";
import { join } from "node:path";

import { lastErrorLine, runCommand } from "../common/command.js";
import { FailedPreconditionError } from "../common/errors.js";
import type { Logger } from "../common/logger.js";
import { isMountPoint } from "./runtime/rootfs-mount.js";

/** statfs(2)'s f_type of a tmpfs (linux/magic.h). */
const tmpfsMagic = 0x01021994;

/** The source our mount shows in mountinfo and df, so an operator can tell whose it is. */
const runTmpfsSource = "shoal-run";

/**
 * Makes the engine's run directory and puts it on a tmpfs. It holds what only one boot needs: the OCI
 * runtime's state, conmon's files, container bundles and exit files, about a dozen files
 * created and deleted per container run. systemd hosts mount /run as a tmpfs, so there is
 * nothing to do; where the directory is on a disk (a host whose /run is not a tmpfs, or a
 * --run-dir elsewhere) this mounts one, so that state cannot outlive a reboot and every
 * container start does not pay for disk inodes (on ext4 without a journal, finding a free
 * inode skips every one freed in the last 30 s: a quarter of a start's CPU, measured). The
 * mount stays when the daemon exits, as its containers do; releaseRunDirectory removes it.
 * A directory on disk that holds containers' runtime state (a daemon of an older layout)
 * is left as it is, so those containers stay reachable.
 */
export async function ensureRunDirectoryOnTmpfs(directory: string, options: { runtimeRootBase: string; logger: Logger; signal?: AbortSignal }): Promise<void> {
  await mkdir(directory, { recursive: true, mode: 0o700 });
  if ((await statfs(directory)).type === tmpfsMagic) return;
  if (await holdsContainers(options.runtimeRootBase)) {
    options.logger.warn({ directory }, "the run directory is on a disk and holds running containers' state: left there; remove the containers and restart to move it to a tmpfs");
    return;
  }
  const mounted = await runCommand("mount", ["-t", "tmpfs", "-o", "mode=0700", runTmpfsSource, directory], options.signal === undefined ? {} : { signal: options.signal });
  if (mounted.code !== 0) {
    throw new FailedPreconditionError(`cannot mount a tmpfs on the run directory ${directory}: ${lastErrorLine(mounted.stderr)}; give a --run-dir on a tmpfs`);
  }
  options.logger.info({ directory }, "mounted a tmpfs on the run directory: it was on a disk");
}

/** Whether an OCI runtime keeps containers' state under `runtimeRootBase` (`<runtime>/<container id>/`). */
async function holdsContainers(runtimeRootBase: string): Promise<boolean> {
  for (const runtime of await readdir(runtimeRootBase).catch(() => [])) {
    if ((await readdir(join(runtimeRootBase, runtime)).catch(() => [])).length > 0) return true;
  }
  return false;
}

/**
 * Unmounts what ensureRunDirectoryOnTmpfs mounted on `directory`, if it is there, so the
 * directory can be removed: for removing an engine's files once its containers are gone.
 * Lazily, as the lab's cleanup does, so a straggling conmon cannot keep the files.
 */
export async function releaseRunDirectory(directory: string): Promise<void> {
  if (!(await isMountPoint(directory))) return;
  const unmounted = await runCommand("umount", ["-l", directory]);
  if (unmounted.code !== 0) throw new FailedPreconditionError(`cannot unmount the run directory ${directory}: ${lastErrorLine(unmounted.stderr)}`);
}
