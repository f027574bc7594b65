import { posix } from "node:path";

import { InvalidArgumentError } from "../../common/errors.js";

/** A mount requested for a container (`-v`, `--tmpfs`, `--mount`). */
export type MountRequest =
  | { type: "volume"; name: string; target: string; readOnly: boolean }
  | { type: "bind"; source: string; target: string; readOnly: boolean }
  | { type: "tmpfs"; target: string; sizeBytes: number | null };

const volumeNamePattern = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;

/** Validates a volume name (Docker's rule) before it is ever used in a path. */
export function validateVolumeName(name: string): string {
  if (!volumeNamePattern.test(name)) {
    throw new InvalidArgumentError(
      `invalid volume name "${name}": use 1-128 letters, digits, '_', '.' or '-', starting with a letter or digit`,
    );
  }
  return name;
}

/** A container path: absolute, normalised, not "/" and without NUL. */
export function validateMountTarget(target: string, spec: string): string {
  if (!target.startsWith("/") || target.includes("\0")) {
    throw new InvalidArgumentError(`invalid mount "${spec}": the container path must be absolute`);
  }
  const normalized = posix.normalize(target);
  if (normalized === "/") throw new InvalidArgumentError(`invalid mount "${spec}": cannot mount over the container's /`);
  return normalized.endsWith("/") ? normalized.slice(0, -1) : normalized;
}

function parseAccessMode(mode: string | undefined, spec: string): boolean {
  if (mode === undefined || mode === "" || mode === "rw") return false;
  if (mode === "ro") return true;
  throw new InvalidArgumentError(`invalid mount "${spec}": the mode must be ro or rw`);
}

/**
 * Parses a Docker `-v` value: `/host/path:/container/path[:ro|rw]` is a bind mount,
 * `name:/container/path[:ro|rw]` a named volume.
 */
export function parseVolumeSpec(spec: string): MountRequest {
  const parts = spec.split(":");
  if (parts.length < 2 || parts.length > 3) {
    throw new InvalidArgumentError(`invalid mount "${spec}": use SOURCE:/container/path[:ro]`);
  }
  const [source = "", targetText = "", mode] = parts;
  const target = validateMountTarget(targetText, spec);
  const readOnly = parseAccessMode(mode, spec);
  if (source.startsWith("/")) {
    if (source.includes("\0")) throw new InvalidArgumentError(`invalid mount "${spec}": bad source path`);
    return { type: "bind", source: posix.normalize(source), target, readOnly };
  }
  return { type: "volume", name: validateVolumeName(source), target, readOnly };
}

/** Parses `--tmpfs /path[:size=N]` (N in bytes, or with k/m/g suffix). */
export function parseTmpfsSpec(spec: string): MountRequest {
  const [targetText = "", options] = spec.split(":", 2);
  const target = validateMountTarget(targetText, spec);
  if (options === undefined || options === "") return { type: "tmpfs", target, sizeBytes: null };
  const match = /^size=([0-9]+)([kmg]?)$/i.exec(options);
  if (match === null) throw new InvalidArgumentError(`invalid tmpfs "${spec}": only size=N[k|m|g] is supported`);
  const units: Record<string, number> = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };
  const size = Number(match[1]) * (units[(match[2] ?? "").toLowerCase()] ?? 1);
  if (!Number.isSafeInteger(size) || size <= 0) throw new InvalidArgumentError(`invalid tmpfs size in "${spec}"`);
  return { type: "tmpfs", target, sizeBytes: size };
}

/** Rejects two mounts on one container path. */
export function checkMountTargetsUnique(mounts: readonly MountRequest[]): void {
  const seen = new Set<string>();
  for (const mount of mounts) {
    if (seen.has(mount.target)) throw new InvalidArgumentError(`duplicate mount point ${mount.target}`);
    seen.add(mount.target);
  }
}
