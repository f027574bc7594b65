import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { spawnSync } from "node:child_process";

import { run } from "../../helpers/run.js";

/** Why the data-plane tests cannot run here, or undefined when they can (root, netns, vxlan, bridge). */
export function dataPlaneSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return "needs root to create network namespaces";
  const name = `shoal-probe-${randomBytes(3).toString("hex")}`;
  const probe = spawnSync("sh", ["-c", `ip netns add ${name} && ip -n ${name} link add v0 type vxlan id 7 local 127.0.0.1 dstport 4789 && ip -n ${name} link add b0 type bridge; s=$?; ip netns del ${name}; exit $s`]);
  if (probe.status !== 0) return `the kernel cannot make vxlan/bridge devices in a netns: ${probe.stderr.toString().trim()}`;
  return undefined;
}

export async function sh(command: string): Promise<string> {
  const result = await run("sh", ["-c", command], { timeoutMs: 20_000 });
  assert.equal(result.code, 0, `${command}: ${result.stderr}`);
  return result.stdout;
}

/**
 * Creates named network namespaces; the caller deletes them with `remove` at the end of
 * its own cleanup, after whatever still uses them (t.after hooks run in the order added).
 */
export async function namespaces(prefix: string, names: readonly string[]): Promise<{ names: Record<string, string>; remove: () => Promise<void> }> {
  const tag = randomBytes(3).toString("hex");
  const made: Record<string, string> = {};
  for (const name of names) made[name] = `${prefix}-${tag}-${name}`;
  const remove = async (): Promise<void> => {
    for (const full of Object.values(made)) await run("ip", ["netns", "del", full]);
  };
  try {
    for (const full of Object.values(made)) await sh(`ip netns add ${full} && ip -n ${full} link set lo up`);
  } catch (error) {
    await remove();
    throw error;
  }
  return { names: made, remove };
}

/** Two "nodes" joined by a veth pair: the underlay the overlay rides on. */
export async function linkNodes(left: string, right: string, addresses: { left: string; right: string }): Promise<void> {
  const tag = randomBytes(3).toString("hex");
  await sh(
    [
      `ip link add ul${tag}a type veth peer name ul${tag}b`,
      `ip link set ul${tag}a netns ${left}`,
      `ip link set ul${tag}b netns ${right}`,
      `ip -n ${left} addr add ${addresses.left}/24 dev ul${tag}a`,
      `ip -n ${right} addr add ${addresses.right}/24 dev ul${tag}b`,
      `ip -n ${left} link set ul${tag}a up`,
      `ip -n ${right} link set ul${tag}b up`,
    ].join(" && "),
  );
}

/** Whether one ping from `netns` to `address` is answered within a second. */
export async function pings(netns: string, address: string): Promise<boolean> {
  const result = await run("ip", ["netns", "exec", netns, "/bin/busybox", "ping", "-c", "1", "-W", "1", address], { timeoutMs: 5_000 });
  return result.code === 0;
}
