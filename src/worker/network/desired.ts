import type { NetworkMap } from "../../manager/dispatcher/index.js";
import type { Task } from "../../manager/objects/index.js";
import type { OverlayAttachment, OverlayNetwork, OverlayState } from "./overlay.js";

/**
 * A local task whose container runs: its interfaces belong on the overlays. A task told to
 * stop keeps them until its container exits: balancers have stopped sending it new
 * connections, but it still answers the ones in flight (and SYNs DNATed just before the
 * balancers changed) during its drain and stop grace period.
 */
function containerNetns(task: Task): string | undefined {
  const pid = task.status.containerStatus?.pid ?? 0;
  if (pid <= 0 || task.status.state !== "running") return undefined;
  return `/proc/${pid}/ns/net`;
}

/**
 * What this node's overlays must look like, from the cluster's network map and the tasks
 * this node runs: the networks its running tasks attach to, every other node as a flood
 * peer, and one interface per running task and network (eth1, eth2, ... in attachment order).
 * Undefined while the map does not list this node (its address is not known yet) or the
 * node's address is a loopback one.
 */
export function desiredOverlay(map: NetworkMap, nodeId: string, tasks: readonly Task[]): { state: OverlayState; attachments: OverlayAttachment[] } | undefined {
  const self = map.nodes.find((node) => node.nodeId === nodeId);
  // Nodes that reach their manager over loopback share one host (tests running several
  // daemons side by side): an overlay between them would fight over the same devices.
  if (self === undefined || self.addr.startsWith("127.") || self.addr === "::1") return undefined;
  const networks = new Map(map.networks.map((network) => [network.id, network]));
  const used = new Map<number, OverlayNetwork>();
  const attachments: OverlayAttachment[] = [];
  for (const task of tasks) {
    const netns = containerNetns(task);
    if (netns === undefined) continue;
    for (const [index, attachment] of (task.networkAttachments ?? []).entries()) {
      const network = networks.get(attachment.networkId);
      if (network === undefined) continue;
      used.set(network.vni, { vni: network.vni, subnet: network.subnet });
      attachments.push({
        key: `${task.status.containerStatus?.containerId ?? task.id}/${network.id}`,
        containerNetns: netns,
        vni: network.vni,
        address: attachment.address,
        interfaceName: `eth${index + 1}`,
      });
    }
  }
  // Every node carries the ingress network, tasks or not: published ports answer everywhere.
  const ingress = map.networks.find((network) => network.ingress);
  if (ingress !== undefined && self.ingressAddress !== undefined) used.set(ingress.vni, { vni: ingress.vni, subnet: ingress.subnet, nodeAddress: self.ingressAddress });
  const peers = map.nodes.filter((node) => node.nodeId !== nodeId).map((node) => node.addr);
  return { state: { localAddress: self.addr, peers, networks: [...used.values()] }, attachments };
}
