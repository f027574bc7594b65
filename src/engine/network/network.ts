import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";

import type { Logger } from "../../common/logger.js";
import { ConflictError, FailedPreconditionError, InvalidArgumentError, errorMessage } from "../../common/errors.js";
import { lastErrorLine, runCommand } from "../../common/command.js";
import type { NetworkNamespace } from "../runtime/spec/spec.js";
import { cniVersion, defaultCniPluginDirectory, invokeCniPlugin } from "./cni.js";
import { attachToBridge } from "./interfaces.js";
import { BridgeAddressPool, parseIpv4, parseIpv4Subnet } from "./ipam.js";
import { installBridgeMasquerade } from "./masquerade.js";
import { isHostPortInUse, portKey, type PortBinding } from "./ports.js";

export type NetworkMode = "bridge" | "host" | "none";
export const networkModes: readonly NetworkMode[] = ["bridge", "host", "none"];

/** Where `ip netns add` creates named network namespaces. */
export const netnsDirectory = "/run/netns";
/** Linux limits interface names to 15 bytes. */
const interfaceNameBytesMax = 15;
const bridgeMtu = 1500;
const ipForwardPath = "/proc/sys/net/ipv4/ip_forward";

/** What a container's network looks like while it runs; persisted so DEL works after a restart. */
export interface NetworkAttachment {
  mode: NetworkMode;
  /** The named netns (bridge mode), else null. */
  netnsName: string | null;
  ipAddress: string | null;
  prefixLength: number | null;
  gateway: string | null;
  macAddress: string | null;
  ports: PortBinding[];
}

export interface NetworkConfig {
  /** Bridge interface name, per daemon (at most 15 bytes). */
  bridgeName: string;
  /** IPv4 subnet in CIDR form, per daemon; its first address is the bridge's. */
  subnet: string;
  cniPluginDirectory?: string;
}

/**
 * Container networking on one node. Bridge mode gives each container a named network
 * namespace plugged into the daemon's bridge, with an address from the daemon's pool and
 * published ports through the CNI portmap plugin; `host` shares the host's namespace;
 * `none` gets a private one with only loopback.
 *
 * The CNI bridge, host-local and loopback plugins did the plugging until they were
 * measured: five Go programs per container (three to attach, two to detach) cost about
 * 17-20 ms of CPU per container, a third of shoal's own share when a node starts a
 * hundred tasks. Two `ip` runs do the same work (attachToBridge).
 */
export interface NetworkManager {
  readonly bridgeName: string;
  readonly subnet: string;
  /**
   * Creates the container's network. Throws ConflictError when a published port is taken
   * (by another container or a host process) and FailedPreconditionError when a plugin
   * fails; on failure nothing is left behind.
   */
  attach(
    containerId: string,
    options: { mode: NetworkMode; ports: readonly PortBinding[]; signal?: AbortSignal },
  ): Promise<{ namespace: NetworkNamespace; attachment: NetworkAttachment }>;
  /** Undoes attach (CNI DEL, netns delete). Idempotent. */
  detach(containerId: string, attachment: NetworkAttachment, options?: { signal?: AbortSignal }): Promise<void>;
  /** Records the address and ports of a container found running at engine start. */
  restore(containerId: string, attachment: NetworkAttachment): void;
}

export function parseNetworkMode(text: string): NetworkMode {
  const mode = networkModes.find((item) => item === text);
  if (mode === undefined) {
    throw new InvalidArgumentError(`unknown network mode "${text}": use bridge, host or none`);
  }
  return mode;
}

/** Validates a per-daemon network configuration (bridge name and IPv4 CIDR subnet). */
export function validateNetworkConfig(config: NetworkConfig): void {
  if (!/^[a-zA-Z0-9_.-]+$/.test(config.bridgeName) || Buffer.byteLength(config.bridgeName) > interfaceNameBytesMax) {
    throw new InvalidArgumentError(`invalid bridge name "${config.bridgeName}": use up to 15 letters, digits, '-', '_' or '.'`);
  }
  parseIpv4Subnet(config.subnet);
}

/** Docker's scheme: 02:42 then the four bytes of the address, so a reused address keeps its MAC and peers' ARP entries stay right. */
export function macAddressOf(address: string): string {
  const value = parseIpv4(address);
  if (value === null) throw new InvalidArgumentError(`"${address}" is not an IPv4 address`);
  const bytes = [2, 0x42, value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255];
  return bytes.map((byte) => byte.toString(16).padStart(2, "0")).join(":");
}

class NetworkManagerImpl implements NetworkManager {
  readonly #config: NetworkConfig;
  readonly #logger: Logger;
  readonly #netnsPrefix: string;
  readonly #pluginDirectory: string;
  readonly #addresses: BridgeAddressPool;
  /** "tcp/8080" -> container id, for every running container with published ports. */
  readonly #publishedPorts = new Map<string, string>();
  /** The bridge, its address and outbound NAT, set up by the first bridge attach of this daemon run. */
  #bridge: Promise<void> | null = null;

  constructor(options: { config: NetworkConfig; logger: Logger; daemonId: string }) {
    validateNetworkConfig(options.config);
    this.#config = options.config;
    this.#logger = options.logger.child({ component: "network" });
    this.#netnsPrefix = `shoal-${options.daemonId.slice(0, 8)}-`;
    this.#pluginDirectory = options.config.cniPluginDirectory ?? defaultCniPluginDirectory;
    this.#addresses = new BridgeAddressPool(options.config.subnet);
  }

  get bridgeName(): string {
    return this.#config.bridgeName;
  }

  get subnet(): string {
    return this.#config.subnet;
  }

  restore(containerId: string, attachment: NetworkAttachment): void {
    for (const port of attachment.ports) this.#publishedPorts.set(portKey(port), containerId);
    if (attachment.ipAddress !== null) this.#addresses.reserve(attachment.ipAddress, containerId);
  }

  async attach(
    containerId: string,
    options: { mode: NetworkMode; ports: readonly PortBinding[]; signal?: AbortSignal },
  ): Promise<{ namespace: NetworkNamespace; attachment: NetworkAttachment }> {
    const empty: NetworkAttachment = { mode: options.mode, netnsName: null, ipAddress: null, prefixLength: null, gateway: null, macAddress: null, ports: [] };
    if (options.mode !== "bridge") {
      if (options.ports.length > 0) {
        throw new InvalidArgumentError(`published ports need the bridge network; this container uses "${options.mode}"`);
      }
      return { namespace: { kind: options.mode === "host" ? "host" : "new" }, attachment: empty };
    }
    await this.#ensureBridge();
    await this.#claimPorts(containerId, options.ports);
    const netnsName = `${this.#netnsPrefix}${containerId.slice(0, 12)}`;
    const attachment: NetworkAttachment = { ...empty, netnsName, ports: [...options.ports] };
    try {
      const address = this.#addresses.allocate(containerId);
      const macAddress = macAddressOf(address);
      Object.assign(attachment, { ipAddress: address, prefixLength: this.#addresses.subnet.prefixLength, gateway: this.#addresses.gateway, macAddress });
      await attachToBridge(
        {
          containerNetns: netnsName,
          bridge: this.#config.bridgeName,
          interfaceName: "eth0",
          address: `${address}/${this.#addresses.subnet.prefixLength}`,
          mtu: bridgeMtu,
          key: containerId,
          macAddress,
          defaultGateway: this.#addresses.gateway,
          hairpin: true,
          createNetns: true,
        },
        options.signal === undefined ? {} : { signal: options.signal },
      );
      if (attachment.ports.length > 0) await this.#portmap("ADD", containerId, attachment, options.signal);
      return { namespace: { kind: "path", path: join(netnsDirectory, netnsName) }, attachment };
    } catch (error) {
      await this.detach(containerId, attachment).catch((cleanupError: unknown) => {
        this.#logger.error({ containerId, err: cleanupError }, "cleaning up a failed network attach failed");
      });
      throw error;
    }
  }

  async detach(containerId: string, attachment: NetworkAttachment, options: { signal?: AbortSignal } = {}): Promise<void> {
    for (const port of attachment.ports) {
      if (this.#publishedPorts.get(portKey(port)) === containerId) this.#publishedPorts.delete(portKey(port));
    }
    if (attachment.mode !== "bridge" || attachment.netnsName === null) return;
    const failures: string[] = [];
    if (attachment.ports.length > 0) {
      try {
        await this.#portmap("DEL", containerId, attachment, options.signal);
      } catch (error) {
        failures.push(errorMessage(error));
      }
    }
    // Deleting the namespace destroys the container's veth end, and with it the host end,
    // in the kernel's background cleanup: no per-interface delete under the rtnl lock.
    const deleted = await runCommand("ip", ["netns", "delete", attachment.netnsName]);
    if (deleted.code !== 0 && !/No such file/.test(deleted.stderr)) failures.push(lastErrorLine(deleted.stderr));
    else if (attachment.ipAddress !== null) this.#addresses.release(attachment.ipAddress, containerId);
    if (failures.length > 0) {
      throw new FailedPreconditionError(`network cleanup of ${containerId.slice(0, 12)} failed: ${failures.join("; ")}`);
    }
  }

  /** Not cancellable by one caller: concurrent attaches share the setup. */
  async #ensureBridge(): Promise<void> {
    this.#bridge ??= this.#setUpBridge().catch((error: unknown) => {
      // The next attach tries again.
      this.#bridge = null;
      throw error;
    });
    await this.#bridge;
  }

  /** The bridge with the gateway address, IPv4 forwarding, and one NAT rule for what leaves the subnet. */
  async #setUpBridge(): Promise<void> {
    const bridge = this.#config.bridgeName;
    const added = await runCommand("ip", ["link", "add", "name", bridge, "type", "bridge"]);
    if (added.code !== 0 && !/File exists/.test(added.stderr)) {
      throw new FailedPreconditionError(`cannot create bridge ${bridge}: ${lastErrorLine(added.stderr)}`);
    }
    const { gateway, subnet } = this.#addresses;
    const configured = await runCommand("ip", ["-batch", "-"], { input: `addr replace ${gateway}/${subnet.prefixLength} dev ${bridge}\nlink set ${bridge} up\n` });
    if (configured.code !== 0) throw new FailedPreconditionError(`cannot give bridge ${bridge} the address ${gateway}: ${lastErrorLine(configured.stderr)}`);
    if ((await readFile(ipForwardPath, "utf8")).trim() !== "1") {
      // Containers reach beyond the node only through the host's routing, as with Docker.
      await writeFile(ipForwardPath, "1\n");
      this.#logger.info("enabled IPv4 forwarding for the bridge network");
    }
    await installBridgeMasquerade({ bridgeName: bridge, subnet: this.#config.subnet });
  }

  async #claimPorts(containerId: string, ports: readonly PortBinding[]): Promise<void> {
    const keys = new Set<string>();
    for (const port of ports) {
      const key = portKey(port);
      const owner = this.#publishedPorts.get(key);
      if (keys.has(key) || (owner !== undefined && owner !== containerId)) {
        throw new ConflictError(`port ${port.hostPort}/${port.protocol} is already published by container ${(owner ?? containerId).slice(0, 12)}: choose another host port`);
      }
      if (await isHostPortInUse(port)) {
        throw new ConflictError(`port ${port.hostPort}/${port.protocol} is already in use on the host: choose another host port`);
      }
      keys.add(key);
    }
    for (const key of keys) this.#publishedPorts.set(key, containerId);
  }

  /**
   * Published ports through the CNI portmap plugin (DNAT from the host's port to the
   * container's). Its input is the result a CNI bridge plugin would have given: the
   * container's interface and address.
   */
  async #portmap(command: "ADD" | "DEL", containerId: string, attachment: NetworkAttachment, signal: AbortSignal | undefined): Promise<void> {
    const netnsPath = join(netnsDirectory, attachment.netnsName ?? "");
    const prevResult = {
      cniVersion,
      interfaces: [{ name: "eth0", mac: attachment.macAddress ?? "", sandbox: netnsPath }],
      ips: [{ interface: 0, address: `${attachment.ipAddress ?? ""}/${attachment.prefixLength ?? 0}`, gateway: attachment.gateway ?? "" }],
    };
    const portMappings = attachment.ports.map((port) => ({
      hostPort: port.hostPort,
      containerPort: port.containerPort,
      protocol: port.protocol,
      ...(port.hostIp === "0.0.0.0" ? {} : { hostIP: port.hostIp }),
    }));
    await invokeCniPlugin({
      pluginDirectory: this.#pluginDirectory,
      command,
      containerId,
      netnsPath,
      interfaceName: "eth0",
      config: { cniVersion, name: `shoal-${this.#config.bridgeName}`, type: "portmap", snat: true, runtimeConfig: { portMappings }, prevResult },
      ...(signal === undefined ? {} : { signal }),
    });
  }
}

export function createNetworkManager(options: { config: NetworkConfig; logger: Logger; daemonId: string }): NetworkManager {
  return new NetworkManagerImpl(options);
}
