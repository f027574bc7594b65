import { readFile, readdir, rmdir } from "node:fs/promises";
import { join } from "node:path";

import { FailedPreconditionError, systemErrorCode } from "../../../common/errors.js";

/** The cgroup v1 hierarchy root on this host (hybrid layout: one mount per controller). */
export const cgroupRoot = "/sys/fs/cgroup";

/**
 * Removes `path` (e.g. `/shoal-x/probe`) from every cgroup hierarchy, deepest first is the
 * caller's job. Missing directories are fine; a busy one (processes inside) is an error.
 */
export async function removeCgroupDirectories(path: string): Promise<void> {
  const hierarchies = await readdir(cgroupRoot);
  const busy: string[] = [];
  for (const hierarchy of hierarchies) {
    try {
      await rmdir(join(cgroupRoot, hierarchy, path));
    } catch (error) {
      const code = systemErrorCode(error);
      if (code === "ENOENT" || code === "ENOTDIR") continue;
      busy.push(`${hierarchy}: ${code ?? String(error)}`);
    }
  }
  if (busy.length > 0) {
    throw new FailedPreconditionError(`cannot remove cgroup ${path} (${busy.join(", ")}): processes may still run in it`);
  }
}

/** Lists the cgroup paths (in the memory hierarchy) under `parent`, for leak checks. */
export async function listChildCgroups(parent: string): Promise<string[]> {
  try {
    const entries = await readdir(join(cgroupRoot, "memory", parent), { withFileTypes: true });
    return entries.filter((entry) => entry.isDirectory()).map((entry) => join(parent, entry.name));
  } catch (error) {
    if (systemErrorCode(error) === "ENOENT") return [];
    throw error;
  }
}

async function readNumber(path: string): Promise<number | null> {
  try {
    const text = (await readFile(path, "utf8")).trim();
    const value = Number(text);
    return Number.isFinite(value) ? value : null;
  } catch (error) {
    if (systemErrorCode(error) === "ENOENT") return null;
    throw error;
  }
}

async function readFirstExisting(paths: readonly string[]): Promise<number | null> {
  for (const path of paths) {
    const value = await readNumber(path);
    if (value !== null) return value;
  }
  return null;
}

export interface CgroupStats {
  memoryUsageBytes: number | null;
  memoryMaxUsageBytes: number | null;
  memoryLimitBytes: number | null;
  cpuUsageNanoseconds: number | null;
  pidsCurrent: number | null;
}

/** Reads a container's usage from its cgroup v1 files; null fields are absent controllers. */
export async function readCgroupStats(cgroupsPath: string): Promise<CgroupStats> {
  const memory = join(cgroupRoot, "memory", cgroupsPath);
  return {
    memoryUsageBytes: await readNumber(join(memory, "memory.usage_in_bytes")),
    memoryMaxUsageBytes: await readNumber(join(memory, "memory.max_usage_in_bytes")),
    memoryLimitBytes: await readNumber(join(memory, "memory.limit_in_bytes")),
    cpuUsageNanoseconds: await readFirstExisting([
      join(cgroupRoot, "cpuacct", cgroupsPath, "cpuacct.usage"),
      join(cgroupRoot, "cpu,cpuacct", cgroupsPath, "cpuacct.usage"),
    ]),
    pidsCurrent: await readNumber(join(cgroupRoot, "pids", cgroupsPath, "pids.current")),
  };
}

/**
 * How many processes the kernel's OOM killer killed in this cgroup (the `oom_kill` line of
 * memory.oom_control, kernel 4.13+); 0 when the cgroup is gone or the line is absent.
 */
export async function readOomKillCount(cgroupsPath: string): Promise<number> {
  let text: string;
  try {
    text = await readFile(join(cgroupRoot, "memory", cgroupsPath, "memory.oom_control"), "utf8");
  } catch (error) {
    if (systemErrorCode(error) === "ENOENT") return 0;
    throw error;
  }
  const match = /^oom_kill (\d+)$/m.exec(text);
  return match === null ? 0 : Number(match[1]);
}

/**
 * This process's hard RLIMIT_NOFILE (from /proc/self/limits). Containers default to it:
 * raising a limit above it needs CAP_SYS_RESOURCE, which a daemon in a container may lack.
 */
export async function readNofileHardLimit(): Promise<number | null> {
  const text = await readFile("/proc/self/limits", "utf8").catch(() => "");
  const match = /^Max open files\s+\S+\s+(\d+)/m.exec(text);
  return match === null ? null : Number(match[1]);
}
