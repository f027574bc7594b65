import { existsSync, readFileSync } from "node:fs";
import { availableParallelism, hostname, release, totalmem } from "node:os";

/** Facts about the host that do not change while the daemon runs. */
export interface HostFacts {
  readonly hostname: string;
  readonly operatingSystem: string;
  readonly osVersion: string;
  readonly kernelVersion: string;
  readonly arch: string;
  readonly ncpu: number;
  readonly memTotalBytes: number;
  readonly cgroupVersion: "1" | "2";
}

function readOsRelease(): Map<string, string> {
  const fields = new Map<string, string>();
  let text = "";
  try {
    text = readFileSync("/etc/os-release", "utf8");
  } catch {
    return fields; // not every system has it; the caller falls back to "Linux"
  }
  for (const line of text.split("\n")) {
    const match = /^([A-Z_]+)=(?:"([^"]*)"|(.*))$/.exec(line);
    if (match?.[1] !== undefined) fields.set(match[1], match[2] ?? match[3] ?? "");
  }
  return fields;
}

export function readHostFacts(): HostFacts {
  const osRelease = readOsRelease();
  return {
    hostname: hostname(),
    operatingSystem: osRelease.get("PRETTY_NAME") ?? "Linux",
    osVersion: osRelease.get("VERSION_ID") ?? "",
    kernelVersion: release(),
    arch: process.arch,
    ncpu: availableParallelism(),
    memTotalBytes: totalmem(),
    // A unified hierarchy has cgroup.controllers at its root; hybrid and v1 hosts do not.
    cgroupVersion: existsSync("/sys/fs/cgroup/cgroup.controllers") ? "2" : "1",
  };
}
