import { readFile, readdir, readlink, rm, rmdir, stat } from "node:fs/promises";
import { join } from "node:path";

import type { Clock } from "../common/clock.js";
import { FailedPreconditionError } from "../common/errors.js";
import type { Logger } from "../common/logger.js";
import { lastErrorLine } from "../common/command.js";
import { readEngineId } from "../engine/engine.js";
import { listMountPoints } from "../engine/runtime/rootfs-mount.js";
import { runLabCommand } from "./command.js";
import { signalProcess, waitProcessGone } from "./host-process.js";
import { labBridgeName, labNetnsName } from "./names.js";
import { labSubnetClaimPath, netnsDirectory } from "./network.js";
import { labStateDir, readLabState, removeLabStateDir, type LabState } from "./state.js";

/** Rounds of "kill every process in the lab's namespaces": conmon may start one more child. */
const killRoundsMax = 20;
const processGoneTimeoutMs = 5_000;
/** cgroup hierarchies are mounted here; v1 has one folder per controller. */
const cgroupRoot = "/sys/fs/cgroup";
const ociRuntimes = ["runc", "crun"] as const;

async function listDir(path: string): Promise<string[]> {
  return await readdir(path).catch(() => []);
}

async function engineIds(state: LabState | undefined): Promise<string[]> {
  const ids: string[] = [];
  for (const host of state?.hosts ?? []) {
    const id = await readEngineId(host.dataDir);
    if (id !== undefined) ids.push(id);
  }
  return ids;
}

/** Every lab netns of this name (from /run/netns, so a crash before state.json was written is covered). */
async function labNetnsNames(name: string): Promise<string[]> {
  const prefix = labNetnsName(name, "");
  return (await listDir(netnsDirectory)).filter((entry) => entry.startsWith(prefix) && /^[mw]\d+$/.test(entry.slice(prefix.length)));
}

async function containerNetnsNames(ids: readonly string[]): Promise<string[]> {
  const prefixes = ids.map((id) => `shoal-${id.slice(0, 8)}-`);
  return (await listDir(netnsDirectory)).filter((entry) => prefixes.some((prefix) => entry.startsWith(prefix)));
}

/** Inode numbers of the namespaces, as `readlink /proc/PID/ns/net` shows them ("net:[N]"). */
async function namespaceInodes(names: readonly string[]): Promise<Set<string>> {
  const inodes = new Set<string>();
  for (const name of names) {
    const info = await stat(join(netnsDirectory, name)).catch(() => undefined);
    if (info !== undefined) inodes.add(`net:[${info.ino}]`);
  }
  return inodes;
}

async function processesIn(inodes: ReadonlySet<string>): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await listDir("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    const link = await readlink(`/proc/${entry}/ns/net`).catch(() => "");
    if (inodes.has(link)) pids.push(Number(entry));
  }
  return pids;
}

/** SIGKILLs everything in the namespaces until nothing is left (SIGCONT first: a stopped process holds its signal). */
async function killNamespaceProcesses(inodes: ReadonlySet<string>, clock: Clock): Promise<void> {
  if (inodes.size === 0) return;
  for (let round = 0; round < killRoundsMax; round += 1) {
    const pids = await processesIn(inodes);
    if (pids.length === 0) return;
    for (const pid of pids) {
      signalProcess(pid, "SIGKILL");
      signalProcess(pid, "SIGCONT");
    }
    for (const pid of pids) await waitProcessGone(pid, processGoneTimeoutMs, clock);
  }
  throw new FailedPreconditionError(`processes keep appearing in the lab's namespaces after ${killRoundsMax} rounds of SIGKILL`);
}

/** Deletes each container's runtime state (and with it its cgroups) with the runtime that made it. */
async function deleteRuntimeContainers(state: LabState | undefined, logger: Logger): Promise<void> {
  for (const host of state?.hosts ?? []) {
    for (const runtime of ociRuntimes) {
      const root = join(host.runDir, "engine", "oci", runtime);
      if ((await stat(root).catch(() => undefined)) === undefined) continue;
      const listed = await runLabCommand(runtime, ["--root", root, "list", "-q"]).catch(() => undefined);
      for (const id of listed?.stdout.split("\n").filter((line) => line !== "") ?? []) {
        const deleted = await runLabCommand(runtime, ["--root", root, "delete", "--force", id]);
        if (deleted.code !== 0) logger.warn({ host: host.name, container: id, stderr: lastErrorLine(deleted.stderr) }, "runtime delete failed; the sweep below kills its processes");
      }
    }
  }
}

async function mountsUnder(roots: readonly string[]): Promise<string[]> {
  const points = (await listMountPoints()).filter((point) => roots.some((root) => point === root || point.startsWith(`${root}/`)));
  // Deepest first, so a mount on top of another comes off before the one below it.
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}

async function unmountUnder(roots: readonly string[]): Promise<void> {
  for (const point of await mountsUnder(roots)) {
    const result = await runLabCommand("umount", ["-l", point]);
    if (result.code !== 0 && !/not mounted|no mount point/i.test(result.stderr)) {
      throw new FailedPreconditionError(`cannot unmount ${point}: ${lastErrorLine(result.stderr)}; the lab's files were left in place`);
    }
  }
  const left = await mountsUnder(roots);
  if (left.length > 0) throw new FailedPreconditionError(`still mounted after unmount: ${left.join(", ")}; the lab's files were left in place`);
}

async function removeCgroupTree(path: string): Promise<void> {
  const entries = await readdir(path, { withFileTypes: true }).catch(() => undefined);
  if (entries === undefined) return;
  for (const entry of entries) if (entry.isDirectory()) await removeCgroupTree(join(path, entry.name));
  await rmdir(path).catch(() => undefined);
}

/** The engine parents its containers' cgroups at /shoal-<engine id> in every hierarchy. */
async function removeEngineCgroups(ids: readonly string[]): Promise<void> {
  const hierarchies = [cgroupRoot, ...(await listDir(cgroupRoot)).map((entry) => join(cgroupRoot, entry))];
  for (const hierarchy of hierarchies) {
    for (const id of ids) await removeCgroupTree(join(hierarchy, `shoal-${id}`));
  }
}

async function deleteNetns(names: readonly string[]): Promise<void> {
  for (const name of names) {
    const result = await runLabCommand("ip", ["netns", "delete", name]);
    if (result.code !== 0 && !/No such file/.test(result.stderr)) throw new FailedPreconditionError(`cannot delete netns ${name}: ${lastErrorLine(result.stderr)}`);
  }
}

async function deleteLink(name: string): Promise<void> {
  const result = await runLabCommand("ip", ["link", "delete", name]);
  if (result.code !== 0 && !/Cannot find device|does not exist/i.test(result.stderr)) throw new FailedPreconditionError(`cannot delete link ${name}: ${lastErrorLine(result.stderr)}`);
}

/** Drops the lab's subnet claim, unless another lab has taken the octet over since. */
async function releaseSubnetClaim(name: string, subnet: string): Promise<void> {
  const octet = Number(subnet.split(".")[2]);
  const path = labSubnetClaimPath(octet);
  if ((await readFile(path, "utf8").catch(() => "")).trim() === name) await rm(path, { force: true });
}

/**
 * Removes everything a lab of this name may have made, whether it is healthy, half made by a
 * crashed `up`, or left by a process killed with -9: processes (shoald, conmon, containers),
 * runtime state, mounts, cgroups, namespaces, links, host dirs and state. Idempotent.
 */
export async function removeLab(name: string, options: { logger: Logger; clock: Clock }): Promise<void> {
  const state = await readLabState(name).catch((error: unknown) => {
    options.logger.warn({ err: error, lab: name }, "unreadable lab state: removing what the name alone identifies");
    return undefined;
  });
  const hostNetns = [...new Set([...(state?.hosts.map((host) => host.netns) ?? []), ...(await labNetnsNames(name))])];
  // Processes are found by namespace, not by the pids in state.json: after a crash those may name someone else's process.
  const ids = await engineIds(state);
  await killNamespaceProcesses(await namespaceInodes(hostNetns), options.clock);
  await deleteRuntimeContainers(state, options.logger);
  const containerNetns = await containerNetnsNames(ids);
  await killNamespaceProcesses(await namespaceInodes(containerNetns), options.clock);
  const roots = [labStateDir(name), ...(state === undefined ? [] : [state.hostsRoot])];
  await unmountUnder(roots);
  await removeEngineCgroups(ids);
  await deleteNetns([...containerNetns, ...hostNetns]);
  for (const host of state?.hosts ?? []) await deleteLink(host.veth);
  await deleteLink(state?.bridge ?? labBridgeName(name));
  if (state !== undefined) await rm(state.hostsRoot, { recursive: true, force: true });
  await removeLabStateDir(name);
  if (state !== undefined) await releaseSubnetClaim(name, state.subnet);
}
