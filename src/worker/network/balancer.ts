import { FailedPreconditionError } from "../../common/errors.js";
import { lastErrorLine, runCommand } from "../../common/command.js";
import { ipTableRuleset } from "../../engine/network/index.js";

/** The nftables table the balancer owns in each container's namespace. */
export const balancerTable = "shoal_lb";
/** Most backends one VIP spreads over: bounds the rule's map. */
export const vipBackendsMax = 4_096;

export interface VipRule {
  /** "10.240.1.2" (no prefix). */
  vip: string;
  /** Addresses of the tasks that may take new connections, no prefix. */
  backends: readonly string[];
}

/**
 * The ruleset of one container's namespace: each VIP it may use is DNATed to its ready
 * tasks in turn (`numgen inc`: an even spread, each new connection to the next task;
 * conntrack keeps established ones where they are). A VIP with no ready task is
 * rejected at once rather than left to time out. DNS queries go to the node's resolver.
 * The text replaces the whole table in one nft transaction, so a change is atomic.
 */
export function balancerRuleset(rules: readonly VipRule[], dns: string | undefined): string {
  const nat: string[] = [];
  const filter: string[] = [];
  for (const rule of rules) {
    const backends = rule.backends.slice(0, vipBackendsMax);
    if (backends.length === 0) {
      filter.push(`ip daddr ${rule.vip} reject`);
      continue;
    }
    const map = backends.map((backend, index) => `${index} : ${backend}`).join(", ");
    nat.push(`ip daddr ${rule.vip} dnat to numgen inc mod ${backends.length} map { ${map} }`);
  }
  // TCP too: a client retries over TCP when the UDP answer was truncated (tasks.<service>).
  if (dns !== undefined) nat.push(`udp dport 53 dnat to ${dns}:53`, `tcp dport 53 dnat to ${dns}:53`);
  return ipTableRuleset(balancerTable, [
    { name: "output_nat", hook: "type nat hook output priority -100", rules: nat },
    { name: "output_filter", hook: "type filter hook output priority 0", rules: filter },
  ]);
}

/** Loads a ruleset into the network namespace at `netns` (a path such as /proc/PID/ns/net). */
export async function applyBalancerRuleset(netns: string, ruleset: string, options: { signal?: AbortSignal } = {}): Promise<void> {
  const result = await runCommand("nsenter", [`--net=${netns}`, "nft", "-f", "-"], { input: ruleset, ...(options.signal === undefined ? {} : { signal: options.signal }) });
  if (result.code !== 0) throw new FailedPreconditionError(`cannot load the service balancer into ${netns}: ${lastErrorLine(result.stderr)}`);
}

/** The container's eth0 address and default gateway (the node side of its bridge), read from its namespace. */
export async function containerUplink(netns: string, options: { signal?: AbortSignal } = {}): Promise<{ address: string; gateway: string } | undefined> {
  const signalOption = options.signal === undefined ? {} : { signal: options.signal };
  const [addr, route] = await Promise.all([
    runCommand("nsenter", [`--net=${netns}`, "ip", "-4", "-o", "addr", "show", "dev", "eth0"], signalOption),
    runCommand("nsenter", [`--net=${netns}`, "ip", "-4", "route", "show", "default"], signalOption),
  ]);
  const address = /inet (\d+\.\d+\.\d+\.\d+)\//u.exec(addr.stdout)?.[1];
  const gateway = /default via (\d+\.\d+\.\d+\.\d+)/u.exec(route.stdout)?.[1];
  return address === undefined || gateway === undefined ? undefined : { address, gateway };
}
