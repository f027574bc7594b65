import { createHash } from "node:crypto";

import { FailedPreconditionError, errorMessage } from "../../common/errors.js";
import type { Logger } from "../../common/logger.js";
import { attachToBridge, detachFromBridge } from "../../engine/network/index.js";
import { lastErrorLine, runCommand } from "../../common/command.js";

/** The IANA VXLAN port (RFC 7348). */
export const vxlanPort = 4_789;
/** VXLAN adds 50 bytes (outer Ethernet, IPv4, UDP, VXLAN headers) to a 1500-byte underlay. */
export const overlayMtu = 1_450;
/** Most remote nodes one overlay replicates floods to: bounds the fdb of each VXLAN device. */
export const overlayPeersMax = 1_024;

export interface OverlayNetwork {
  vni: number;
  subnet: string;
  /** The node's own address on this network ("10.240.0.9/24"): the ingress network's, for the routing mesh. */
  nodeAddress?: string;
}

/** What the node's overlays must look like: built from what the dispatcher sends. */
export interface OverlayState {
  /** This node's underlay (advertise) address: the VXLAN source. */
  localAddress: string;
  /** Every other node's underlay address: floods (ARP, unknown unicast) are replicated to each. */
  peers: readonly string[];
  networks: readonly OverlayNetwork[];
}

/** One local task's interface on one overlay. */
export interface OverlayAttachment {
  /** Unique per container and network; names the host-side veth. */
  key: string;
  containerNetns: string;
  vni: number;
  /** "10.240.1.5/24". */
  address: string;
  interfaceName: string;
}

export function overlayBridgeName(vni: number): string {
  return `shob-${vni}`;
}

export function overlayVxlanName(vni: number): string {
  return `shov-${vni}`;
}

const zeroMac = "00:00:00:00:00:00";

/**
 * A fixed MAC for the node's bridge of one overlay. Left alone, a Linux bridge takes the
 * lowest MAC of its ports, so it changes as tasks' interfaces come and go (seen during
 * rolling updates); tasks keep the old one in their ARP cache for the node's address, and
 * once the port that owned it is gone their replies to the routing mesh are flooded
 * instead of reaching the node. Locally administered, and distinct per node and network:
 * the bridges of one overlay share an L2 segment across nodes.
 */
export function overlayBridgeMac(vni: number, localAddress: string): string {
  const digest = createHash("sha256").update(`${vni}/${localAddress}`).digest();
  const octets = [0x02, ...digest.subarray(0, 5)];
  return octets.map((octet) => octet.toString(16).padStart(2, "0")).join(":");
}

interface Programmed {
  localAddress: string;
  peers: Set<string>;
  nodeAddress: string | undefined;
}

/**
 * The node's overlay data plane. Each overlay network is a Linux bridge with a VXLAN
 * device (VNI per network, UDP 4789, source = the node's address) as a port; floods go to
 * every other node by head-end replication (an all-zeros fdb entry per peer) and the
 * kernel learns remote MACs from the replies. Containers are veth ports of the bridge.
 * Networks share nothing: separate bridges, separate VNIs, no address on the node side,
 * so nothing routes between them. `apply` changes only what differs from the last call.
 */
export class OverlayPlane {
  readonly #logger: Logger;
  readonly #hostNetns: string | undefined;
  readonly #networks = new Map<number, Programmed>();
  readonly #attachments = new Map<string, OverlayAttachment>();

  constructor(options: { logger: Logger; hostNetns?: string }) {
    this.#logger = options.logger.child({ component: "overlay" });
    this.#hostNetns = options.hostNetns;
  }

  /**
   * Programs the kernel to match `state` and `attachments`. FailedPreconditionError names
   * the first command that failed; what succeeded before stays, and the next call retries
   * the rest.
   */
  async apply(state: OverlayState, attachments: readonly OverlayAttachment[], options: { signal?: AbortSignal } = {}): Promise<void> {
    if (state.peers.length > overlayPeersMax) throw new FailedPreconditionError(`the overlay has ${state.peers.length} peers, more than ${overlayPeersMax}`);
    const wanted = new Map(state.networks.map((network) => [network.vni, network]));
    const wantedAttachments = new Map(attachments.filter((item) => wanted.has(item.vni)).map((item) => [item.key, item]));
    for (const [key, attachment] of this.#attachments) {
      const next = wantedAttachments.get(key);
      if (next === undefined || next.address !== attachment.address || next.containerNetns !== attachment.containerNetns) await this.#detach(attachment, options);
    }
    for (const [vni, programmed] of this.#networks) {
      if (!wanted.has(vni) || programmed.localAddress !== state.localAddress) await this.#removeNetwork(vni, options);
    }
    const peers = [...new Set(state.peers.filter((peer) => peer !== state.localAddress))];
    for (const network of wanted.values()) {
      const programmed = this.#networks.get(network.vni) ?? (await this.#createNetwork(network.vni, state.localAddress, options));
      await this.#syncPeers(network.vni, programmed, peers, options);
      if (programmed.nodeAddress !== network.nodeAddress) await this.#setNodeAddress(network.vni, programmed, network.nodeAddress, options.signal);
    }
    for (const attachment of wantedAttachments.values()) {
      if (!this.#attachments.has(attachment.key)) await this.#attach(attachment, options);
    }
  }

  /** Removes every interface and network this plane made. */
  async close(options: { signal?: AbortSignal } = {}): Promise<void> {
    for (const attachment of [...this.#attachments.values()]) await this.#detach(attachment, options);
    for (const vni of [...this.#networks.keys()]) await this.#removeNetwork(vni, options);
  }

  async #run(tool: "ip" | "bridge", lines: readonly string[], signal: AbortSignal | undefined, what: string): Promise<void> {
    if (lines.length === 0) return;
    const args = [...(this.#hostNetns === undefined ? [] : ["-n", this.#hostNetns]), "-batch", "-"];
    const result = await runCommand(tool, args, { input: `${lines.join("\n")}\n`, ...(signal === undefined ? {} : { signal }) });
    if (result.code !== 0) throw new FailedPreconditionError(`${what}: ${lastErrorLine(result.stderr)}`);
  }

  async #createNetwork(vni: number, localAddress: string, options: { signal?: AbortSignal }): Promise<Programmed> {
    const bridge = overlayBridgeName(vni);
    const vxlan = overlayVxlanName(vni);
    // Devices left by an earlier run of the daemon would make the adds fail.
    await this.#deleteDevices(vni, options.signal);
    await this.#run(
      "ip",
      [
        `link add ${bridge} address ${overlayBridgeMac(vni, localAddress)} mtu ${overlayMtu} type bridge`,
        `link add ${vxlan} mtu ${overlayMtu} type vxlan id ${vni} local ${localAddress} dstport ${vxlanPort} learning ttl 64`,
        `link set ${vxlan} master ${bridge} up`,
        `link set ${bridge} up`,
      ],
      options.signal,
      `cannot create overlay network ${vni}`,
    );
    const programmed: Programmed = { localAddress, peers: new Set(), nodeAddress: undefined };
    this.#networks.set(vni, programmed);
    this.#logger.info({ vni, bridge, localAddress }, "overlay network created");
    return programmed;
  }

  /**
   * Gives the node an address on the network's bridge, so it can route published ports
   * to tasks there; connections to the node's localhost may leave through it once DNATed.
   */
  async #setNodeAddress(vni: number, programmed: Programmed, address: string | undefined, signal: AbortSignal | undefined): Promise<void> {
    const bridge = overlayBridgeName(vni);
    await this.#run("ip", [`addr flush dev ${bridge}`, ...(address === undefined ? [] : [`addr add ${address} dev ${bridge}`])], signal, `cannot set the node's address on overlay ${vni}`);
    programmed.nodeAddress = address;
    if (address === undefined) return;
    const inNetns = this.#hostNetns === undefined ? [] : ["ip", "netns", "exec", this.#hostNetns];
    const [file = "sysctl", ...args] = [...inNetns, "sysctl", "-q", "-w", `net.ipv4.conf.${bridge}.route_localnet=1`, "net.ipv4.ip_forward=1"];
    const result = await runCommand(file, args, signal === undefined ? {} : { signal });
    if (result.code !== 0) throw new FailedPreconditionError(`cannot enable routing to overlay ${vni}: ${lastErrorLine(result.stderr)}`);
  }

  async #deleteDevices(vni: number, signal: AbortSignal | undefined): Promise<void> {
    for (const device of [overlayVxlanName(vni), overlayBridgeName(vni)]) {
      const result = await runCommand("ip", [...(this.#hostNetns === undefined ? [] : ["-n", this.#hostNetns]), "link", "del", device], signal === undefined ? {} : { signal });
      if (result.code !== 0 && !/Cannot find device/u.test(result.stderr)) throw new FailedPreconditionError(`cannot remove ${device}: ${lastErrorLine(result.stderr)}`);
    }
  }

  async #removeNetwork(vni: number, options: { signal?: AbortSignal }): Promise<void> {
    for (const attachment of [...this.#attachments.values()]) if (attachment.vni === vni) await this.#detach(attachment, options);
    await this.#deleteDevices(vni, options.signal);
    this.#networks.delete(vni);
    this.#logger.info({ vni }, "overlay network removed");
  }

  async #syncPeers(vni: number, programmed: Programmed, peers: readonly string[], options: { signal?: AbortSignal }): Promise<void> {
    const vxlan = overlayVxlanName(vni);
    const wanted = new Set(peers);
    const gone = [...programmed.peers].filter((peer) => !wanted.has(peer));
    const added = peers.filter((peer) => !programmed.peers.has(peer));
    await this.#run("bridge", gone.map((peer) => `fdb del ${zeroMac} dev ${vxlan} dst ${peer}`), options.signal, `cannot remove overlay peers of ${vni}`);
    for (const peer of gone) programmed.peers.delete(peer);
    await this.#run("bridge", added.map((peer) => `fdb append ${zeroMac} dev ${vxlan} dst ${peer}`), options.signal, `cannot add overlay peers to ${vni}`);
    for (const peer of added) programmed.peers.add(peer);
  }

  async #attach(attachment: OverlayAttachment, options: { signal?: AbortSignal }): Promise<void> {
    const hostNetns = this.#hostNetns === undefined ? {} : { hostNetns: this.#hostNetns };
    // An interface left by an earlier run of the daemon (containers outlive it) is re-plumbed.
    await detachFromBridge({ key: attachment.key, ...hostNetns }, options);
    await attachToBridge(
      {
        containerNetns: attachment.containerNetns,
        bridge: overlayBridgeName(attachment.vni),
        interfaceName: attachment.interfaceName,
        address: attachment.address,
        mtu: overlayMtu,
        key: attachment.key,
        ...(this.#hostNetns === undefined ? {} : { hostNetns: this.#hostNetns }),
      },
      options,
    );
    this.#attachments.set(attachment.key, attachment);
  }

  async #detach(attachment: OverlayAttachment, options: { signal?: AbortSignal }): Promise<void> {
    try {
      await detachFromBridge({ key: attachment.key, ...(this.#hostNetns === undefined ? {} : { hostNetns: this.#hostNetns }) }, options);
    } catch (error) {
      this.#logger.warn({ key: attachment.key, err: errorMessage(error) }, "removing a container's overlay interface failed");
      throw error;
    }
    this.#attachments.delete(attachment.key);
  }
}
