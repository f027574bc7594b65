import { FailedPreconditionError } from "../../common/errors.js";
import type { NetworkMap } from "../../manager/dispatcher/index.js";
import { lastErrorLine, runCommand } from "../../common/command.js";
import { ipTableRuleset } from "../../engine/network/index.js";
import { vipBackendsMax } from "./balancer.js";
import { overlayBridgeName } from "./overlay.js";

/** The nftables table the routing mesh owns in the node's namespace. */
export const meshTable = "shoal_mesh";

/**
 * A port published straight to containers on this node (host mode, or an ingress port
 * with the local traffic policy): no masquerade, so the task sees the client's address.
 */
export interface HostPortRule {
  protocol: "tcp" | "udp";
  publishedPort: number;
  /** The containers' addresses on the node's bridge; empty refuses the port here. */
  targets: readonly string[];
  targetPort: number;
}

/**
 * The node's routing mesh: a published port answers on every local address (and on
 * localhost, through the output hook) and is DNATed to the service's ready tasks on the
 * ingress network in turn, wherever they run; the source becomes the node's ingress
 * address so replies come back through this node. The whole table is replaced in one
 * nft transaction.
 */
export function meshRuleset(map: NetworkMap, hostPorts: readonly HostPortRule[] = []): string {
  const ingress = map.networks.find((network) => network.ingress);
  const rules: string[] = [];
  if (ingress !== undefined) {
    for (const service of map.services) {
      if (service.trafficPolicy === "local") continue;
      const backends = service.tasks
        .filter((task) => task.ready)
        .flatMap((task) => task.addresses.filter((item) => item.networkId === ingress.id).map((item) => item.address.slice(0, item.address.indexOf("/"))))
        .slice(0, vipBackendsMax);
      for (const port of service.publishedPorts) {
        const match = `fib daddr type local ${port.protocol} dport ${port.publishedPort}`;
        if (backends.length === 0) {
          rules.push(`${match} drop`);
          continue;
        }
        const targets = backends.map((backend, index) => `${index} : ${backend} . ${port.targetPort}`).join(", ");
        rules.push(`${match} dnat ip to numgen inc mod ${backends.length} map { ${targets} }`);
      }
    }
  }
  // Host mode publishes only where a task runs: this node's own tasks, no balancing.
  for (const port of hostPorts) {
    const match = `fib daddr type local ${port.protocol} dport ${port.publishedPort}`;
    const targets = port.targets.map((target, index) => `${index} : ${target} . ${port.targetPort}`).join(", ");
    rules.push(port.targets.length === 0 ? `${match} drop` : `${match} dnat ip to numgen inc mod ${port.targets.length} map { ${targets} }`);
  }
  const nat = rules.filter((rule) => !rule.endsWith(" drop"));
  const drops = rules.filter((rule) => rule.endsWith(" drop"));
  return ipTableRuleset(meshTable, [
    { name: "prerouting", hook: "type nat hook prerouting priority -100", rules: nat },
    { name: "output", hook: "type nat hook output priority -100", rules: nat },
    {
      name: "postrouting",
      hook: "type nat hook postrouting priority 100",
      rules: ingress === undefined ? [] : [`oifname "${overlayBridgeName(ingress.vni)}" ct status dnat masquerade`],
    },
    { name: "input_filter", hook: "type filter hook input priority 0", rules: drops },
  ]);
}

/** Loads the mesh ruleset into the node's namespace (or `hostNetns`, for tests and labs). */
export async function applyMeshRuleset(ruleset: string, options: { hostNetns?: string; signal?: AbortSignal } = {}): Promise<void> {
  const [file = "nft", ...args] = [...(options.hostNetns === undefined ? [] : ["ip", "netns", "exec", options.hostNetns]), "nft", "-f", "-"];
  const result = await runCommand(file, args, { input: ruleset, ...(options.signal === undefined ? {} : { signal: options.signal }) });
  if (result.code !== 0) throw new FailedPreconditionError(`cannot load the routing mesh: ${lastErrorLine(result.stderr)}`);
}
