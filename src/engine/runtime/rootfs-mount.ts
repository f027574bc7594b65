import { readFile } from "node:fs/promises";

import { FailedPreconditionError, InvalidArgumentError } from "../../common/errors.js";
import { lastErrorLine, runCommand } from "../../common/command.js";
import type { RootfsMount } from "./types.js";

/** Mounts stacked on one rootfs target (an overlay is one; binds may add a few). */
export const rootfsMountsMax = 8;

/** mountinfo escapes space, tab, newline and backslash as \\ooo. */
function unescapeMountPath(path: string): string {
  return path.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

function escapeMountPath(path: string): string {
  return path.replace(/[ \t\n\\]/g, (character) => `\\${character.charCodeAt(0).toString(8).padStart(3, "0")}`);
}

/** Mount points of this process's mount namespace, from /proc/self/mountinfo. */
export async function listMountPoints(): Promise<string[]> {
  const text = await readFile("/proc/self/mountinfo", "utf8");
  return text
    .split("\n")
    .map((line) => line.split(" ")[4])
    .filter((path): path is string => path !== undefined)
    .map(unescapeMountPath);
}

/**
 * Whether `target` is a mount point. A node with hundreds of containers has a mountinfo of
 * as many lines, read at every container teardown: this looks for the one path instead of
 * splitting and unescaping every line.
 */
export async function isMountPoint(target: string): Promise<boolean> {
  const text = await readFile("/proc/self/mountinfo", "utf8");
  const needle = ` ${escapeMountPath(target)} `;
  for (let at = text.indexOf(needle); at !== -1; at = text.indexOf(needle, at + 1)) {
    // The mount point is a line's fifth field: four spaces before it on its line.
    let spaces = 0;
    for (let index = text.lastIndexOf("\n", at) + 1; index <= at; index += 1) if (text[index] === " ") spaces += 1;
    if (spaces === 4) return true;
  }
  return false;
}

function mountArguments(mount: RootfsMount, target: string): string[] {
  for (const option of mount.options) {
    if (option.includes(",") || option.includes("\0")) throw new InvalidArgumentError(`invalid mount option "${option}"`);
  }
  if (mount.type === "bind") {
    const options = mount.options.some((option) => option === "bind" || option === "rbind") ? mount.options : ["bind", ...mount.options];
    return ["-o", options.join(","), "--", mount.source, target];
  }
  const options = mount.options.length === 0 ? [] : ["-o", mount.options.join(",")];
  return ["-t", mount.type, ...options, "--", mount.source, target];
}

/**
 * Applies a rootfs's mounts at `target` by running mount(8) (Node has no mount call).
 * On failure the mounts already made are undone and FailedPreconditionError is thrown.
 */
export async function mountRootfs(mounts: readonly RootfsMount[], target: string, signal?: AbortSignal): Promise<void> {
  if (mounts.length === 0 || mounts.length > rootfsMountsMax) {
    throw new InvalidArgumentError(`a rootfs needs 1 to ${rootfsMountsMax} mounts, got ${mounts.length}`);
  }
  let done = 0;
  try {
    for (const mount of mounts) {
      const result = await runCommand("mount", mountArguments(mount, target), signal === undefined ? {} : { signal });
      if (result.code !== 0) {
        throw new FailedPreconditionError(`cannot mount the container's root filesystem: ${lastErrorLine(result.stderr)}`);
      }
      done += 1;
    }
  } catch (error) {
    for (let index = 0; index < done; index += 1) await runCommand("umount", [target]);
    throw error;
  }
}

/**
 * Unmounts everything stacked on `target`; a target that is not mounted is fine. With
 * `mounted` (the caller mounted it and has not unmounted it since) the first look at
 * mountinfo is skipped: the file grows with every running container.
 */
export async function unmountRootfs(target: string, options: { mounted?: boolean } = {}): Promise<void> {
  let assumeMounted = options.mounted === true;
  for (let attempt = 0; attempt < rootfsMountsMax; attempt += 1) {
    if (!assumeMounted && !(await isMountPoint(target))) return;
    const result = await runCommand("umount", [target]);
    if (result.code !== 0) {
      // Unmounted behind the caller's back: mountinfo has the last word.
      if (assumeMounted && !(await isMountPoint(target))) return;
      throw new FailedPreconditionError(`cannot unmount ${target}: ${lastErrorLine(result.stderr)}`);
    }
    assumeMounted = false;
  }
  throw new FailedPreconditionError(`${target} still has mounts after ${rootfsMountsMax} unmounts`);
}
