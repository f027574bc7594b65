import { FailedPreconditionError, InvalidArgumentError, UnavailableError } from "../common/errors.js";
import { lastErrorLine } from "../common/command.js";
import { runLabCommand } from "./command.js";
import { labHostInterface, netnsDirectory } from "./network.js";
import type { LabHostState } from "./state.js";

/** The one nft table the lab owns in each host's namespace; heal deletes it whole. */
export const labNftTable = "shoal-lab";
export const labDelayMsMax = 60_000;

export interface PartitionOptions {
  /**
   * Only the first group is cut off from the others: connections it opens toward them are
   * dropped, while connections they open toward it (and the replies) pass. Cutting whole
   * connections, not bare packets, is what a one-way fault means to TCP peers such as raft's
   * gRPC streams: a bare one-way packet drop would break every connection both ways.
   */
  readonly oneWay?: boolean;
}

/** "m1,w1 / m2,m3,w2" as argv words: "/" separates the groups, commas or spaces the hosts. */
export function parsePartitionGroups(words: readonly string[]): string[][] {
  const groups = words.join(" ").split("/").map((group) => group.split(/[\s,]+/).filter((host) => host !== ""));
  if (groups.length < 2 || groups.some((group) => group.length === 0)) {
    throw new InvalidArgumentError(`a partition is two or more host groups separated by "/", e.g. m1,w1 / m2,m3,w2 (got "${words.join(" ")}")`);
  }
  return groups;
}

function nftSet(addresses: readonly string[]): string {
  return `{ ${addresses.join(", ")} }`;
}

/**
 * The rules for one host. Symmetric: drop everything to and from the other side. One-way
 * (first group -> rest cut): in the first group drop packets of connections it originates
 * toward the rest (`ct direction original`); in the rest drop such packets on input too, so
 * the cut holds whichever side's rules are looked at.
 */
export function partitionRules(options: { side: "first" | "other"; peers: readonly string[]; oneWay: boolean }): string {
  const set = nftSet(options.peers);
  const lines: string[] = [];
  if (!options.oneWay) {
    lines.push(`    chain input { type filter hook input priority -10; ip saddr ${set} drop; }`);
    lines.push(`    chain output { type filter hook output priority -10; ip daddr ${set} drop; }`);
  } else if (options.side === "first") {
    lines.push(`    chain output { type filter hook output priority -10; ip daddr ${set} ct direction original drop; }`);
  } else {
    lines.push(`    chain input { type filter hook input priority -10; ip saddr ${set} ct direction original drop; }`);
  }
  return `table inet ${labNftTable} {\n${lines.join("\n")}\n}\n`;
}

async function nftInHost(host: LabHostState, args: readonly string[], input?: string): Promise<{ code: number; stderr: string }> {
  return await runLabCommand("nsenter", [`--net=${netnsDirectory}/${host.netns}`, "--", "nft", ...args], input === undefined ? {} : { input });
}

/** Removes the lab's table in one host; "no such table" is success (heal is idempotent). */
export async function healHost(host: LabHostState): Promise<void> {
  const result = await nftInHost(host, ["delete", "table", "inet", labNftTable]);
  if (result.code !== 0 && !/No such file|does not exist/i.test(result.stderr)) {
    throw new FailedPreconditionError(`removing the partition rules of ${host.name} failed: ${lastErrorLine(result.stderr)}`);
  }
}

/**
 * Cuts the first group off from every other group (hosts in no group are untouched).
 * Any earlier partition is replaced, not added to.
 */
export async function applyPartition(groups: readonly (readonly LabHostState[])[], options: PartitionOptions = {}): Promise<void> {
  if (groups.length < 2) throw new InvalidArgumentError("a partition needs at least two groups of hosts, e.g. m1,w1 / m2,m3,w2");
  const seen = new Set<string>();
  for (const host of groups.flat()) {
    if (seen.has(host.name)) throw new InvalidArgumentError(`host ${host.name} is in two partition groups`);
    seen.add(host.name);
  }
  const oneWay = options.oneWay === true;
  for (const [index, group] of groups.entries()) {
    const others = groups.filter((_, other) => other !== index).flat();
    const first = groups[0] ?? [];
    for (const host of group) {
      await healHost(host);
      // One-way: only the first group and the rest matter; the other groups stay connected to one another.
      const peers = !oneWay ? others : index === 0 ? others : first;
      const rules = partitionRules({ side: index === 0 ? "first" : "other", peers: peers.map((peer) => peer.address), oneWay });
      const result = await nftInHost(host, ["-f", "-"], rules);
      if (result.code !== 0) throw new FailedPreconditionError(`installing partition rules in ${host.name} failed: ${lastErrorLine(result.stderr)}`);
    }
  }
}

/**
 * Sets tc netem on a host's eth0 (both figures at once: netem is one qdisc). Zero delay and
 * zero loss removes it. UnavailableError names the missing kernel part: netem is a module
 * (sch_netem) that some kernels lack or do not load, and this one is probed with modprobe.
 */
export async function applyNetem(host: LabHostState, settings: { delayMs: number; lossPercent: number }): Promise<void> {
  if (!Number.isFinite(settings.delayMs) || settings.delayMs < 0 || settings.delayMs > labDelayMsMax) {
    throw new InvalidArgumentError(`delay must be from 0 to ${labDelayMsMax} ms, not ${settings.delayMs}`);
  }
  if (!Number.isFinite(settings.lossPercent) || settings.lossPercent < 0 || settings.lossPercent > 100) {
    throw new InvalidArgumentError(`loss must be a percentage from 0 to 100, not ${settings.lossPercent}`);
  }
  const inHost = ["--net=" + `${netnsDirectory}/${host.netns}`, "--", "tc", "qdisc"];
  if (settings.delayMs === 0 && settings.lossPercent === 0) {
    const removed = await runLabCommand("nsenter", [...inHost, "del", "dev", labHostInterface, "root"]);
    if (removed.code !== 0 && !/No such file|Cannot delete qdisc with handle of zero/i.test(removed.stderr)) {
      throw new FailedPreconditionError(`removing netem from ${host.name} failed: ${lastErrorLine(removed.stderr)}`);
    }
    return;
  }
  const args = [...inHost, "replace", "dev", labHostInterface, "root", "netem", "delay", `${settings.delayMs}ms`, "loss", `${settings.lossPercent}%`];
  let result = await runLabCommand("nsenter", args);
  if (result.code !== 0 && /unknown|No such file/i.test(result.stderr)) {
    const loaded = await runLabCommand("modprobe", ["sch_netem"]).catch(() => ({ code: 1, stdout: "", stderr: "modprobe is not installed" }));
    if (loaded.code !== 0) {
      throw new UnavailableError(
        `this kernel has no netem qdisc (tc: ${lastErrorLine(result.stderr)}; modprobe sch_netem: ${lastErrorLine(loaded.stderr)}): delay and loss need a kernel with CONFIG_NET_SCH_NETEM`,
      );
    }
    result = await runLabCommand("nsenter", args);
  }
  if (result.code !== 0) throw new FailedPreconditionError(`setting netem on ${host.name} failed: ${lastErrorLine(result.stderr)}`);
}
