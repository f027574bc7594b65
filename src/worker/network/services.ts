import type { NetworkMap, NetworkMapService } from "../../manager/dispatcher/index.js";
import type { VipRule } from "./balancer.js";
import type { DnsLookup } from "./dns-server.js";

const tasksPrefix = "tasks.";

function withoutPrefix(address: string): string {
  return address.slice(0, address.indexOf("/"));
}

/** Ready task addresses of `service` on the given networks. */
function readyAddresses(service: NetworkMapService, networkIds: ReadonlySet<string>): string[] {
  const addresses: string[] = [];
  for (const task of service.tasks) {
    if (!task.ready) continue;
    for (const item of task.addresses) if (networkIds.has(item.networkId)) addresses.push(withoutPrefix(item.address));
  }
  return addresses;
}

/** The VIPs a container on `networkIds` may use, each with the ready tasks behind it on the same network. */
export function vipRules(map: NetworkMap, networkIds: ReadonlySet<string>): VipRule[] {
  const rules: VipRule[] = [];
  for (const service of map.services) {
    if (service.endpointMode !== "vip") continue;
    for (const vip of service.virtualIps) {
      if (!networkIds.has(vip.networkId)) continue;
      rules.push({ vip: withoutPrefix(vip.address), backends: readyAddresses(service, new Set([vip.networkId])) });
    }
  }
  return rules;
}

/**
 * Names as containers see them: a container (known by its eth0 address) resolves only
 * services that share a network with it. `SERVICE` is the VIP (dnsrr: the ready tasks),
 * `tasks.SERVICE` the ready tasks; anything else is not a cluster name.
 */
export function createServiceLookup(map: NetworkMap, networksBySource: ReadonlyMap<string, ReadonlySet<string>>): DnsLookup {
  const byName = new Map(map.services.map((service) => [service.name.toLowerCase(), service]));
  return (source, name) => {
    const networkIds = networksBySource.get(source);
    if (networkIds === undefined) return undefined;
    const tasksOnly = name.startsWith(tasksPrefix);
    const service = byName.get(tasksOnly ? name.slice(tasksPrefix.length) : name);
    if (service === undefined) return undefined;
    const shared = service.tasks.some((task) => task.addresses.some((item) => networkIds.has(item.networkId))) || service.virtualIps.some((vip) => networkIds.has(vip.networkId));
    if (!shared) return undefined;
    if (tasksOnly || service.endpointMode === "dnsrr") return readyAddresses(service, networkIds);
    return service.virtualIps.filter((vip) => networkIds.has(vip.networkId)).map((vip) => withoutPrefix(vip.address));
  };
}
