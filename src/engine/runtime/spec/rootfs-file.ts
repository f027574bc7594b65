import { lstatSync, readFileSync, readlinkSync } from "node:fs";
import { posix } from "node:path";

import { InvalidArgumentError, systemErrorCode } from "../../../common/errors.js";

/** Symlinks followed while resolving one path inside an image, as Linux's own MAXSYMLINKS. */
export const symlinkFollowsMax = 40;

/** A lookup failed because the path, or a folder on it, does not exist. */
export function isMissing(error: unknown): boolean {
  const code = systemErrorCode(error);
  return code === "ENOENT" || code === "ENOTDIR";
}

// Both functions here run at every container start (the image's passwd and group) and
// only look up and read a few small local files: synchronous calls cost a third of the
// CPU of libuv's pool round trips (measured), a node starting many containers is
// CPU-bound, and unlike file creations, reads never wait on the filesystem's journal.

/**
 * Resolves `path` as if `root` were `/`: absolute symlinks restart at `root` and `..` stops
 * at it, so a hostile image's `/etc/passwd -> /../../etc/shadow` cannot reach host files.
 * Returns null when a component does not exist.
 */
export function resolveInRoot(root: string, path: string): string | null {
  let pending = posix.normalize(path).split("/").filter((part) => part !== "" && part !== ".");
  const resolved: string[] = [];
  let follows = 0;
  while (pending.length > 0) {
    const part = pending.shift() ?? "";
    if (part === "..") {
      resolved.pop();
      continue;
    }
    const candidate = posix.join(root, ...resolved, part);
    let isLink: boolean;
    try {
      isLink = lstatSync(candidate).isSymbolicLink();
    } catch (error) {
      if (isMissing(error)) return null;
      throw error;
    }
    if (!isLink) {
      resolved.push(part);
      continue;
    }
    follows += 1;
    if (follows > symlinkFollowsMax) {
      throw new InvalidArgumentError(`too many symbolic links resolving ${path} in the image`);
    }
    const target = readlinkSync(candidate);
    const targetParts = target.split("/").filter((item) => item !== "" && item !== ".");
    if (target.startsWith("/")) resolved.length = 0;
    pending = [...targetParts, ...pending];
  }
  return posix.join(root, ...resolved);
}

/**
 * Reads a small text file of the image (passwd, group) confined to `root`. Returns null
 * when it does not exist; refuses files over `bytesMax` so an image cannot exhaust memory.
 */
export function readRootfsTextFile(root: string, path: string, bytesMax: number): string | null {
  const resolved = resolveInRoot(root, path);
  if (resolved === null) return null;
  let stats;
  try {
    stats = lstatSync(resolved);
  } catch (error) {
    if (isMissing(error)) return null;
    throw error;
  }
  if (!stats.isFile()) return null;
  if (stats.size > bytesMax) {
    throw new InvalidArgumentError(`${path} in the image is ${stats.size} bytes, over the ${bytesMax}-byte limit`);
  }
  return readFileSync(resolved, "utf8");
}
