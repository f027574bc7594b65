import { join } from "node:path";

import type { Logger } from "../../common/logger.js";
import { ConflictError, FailedPreconditionError, InvalidArgumentError, errorMessage } from "../../common/errors.js";
import { lastErrorLine, runCommand } from "../../common/command.js";
import type { NetworkNamespace } from "../runtime/spec/spec.js";
import { cniVersion, defaultCniPluginDirectory, invokeCniPlugin, type CniResult } from "./cni.js";
import { installBridgeMasquerade } from "./masquerade.js";
import { isHostPortInUse, portKey, type PortBinding } from "./ports.js";

export type NetworkMode = "bridge" | "host" | "none";
export const networkModes: readonly NetworkMode[] = ["bridge", "host", "none"];

/** Where `ip netns add` creates named network namespaces. */
export const netnsDirectory = "/run/netns";
/** Linux limits interface names to 15 bytes. */
const interfaceNameBytesMax = 15;

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
  /** The bridge plugin's ADD result, handed back as prevResult on DEL. */
  cniResult: Record<string, unknown> | null;
}

export interface NetworkConfig {
  /** Bridge interface name, per daemon (at most 15 bytes). */
  bridgeName: string;
  /** IPv4 subnet in CIDR form, per daemon. */
  subnet: string;
  /** Directory of host-local IPAM allocations; persistent so running containers keep their IPs. */
  ipamDataDirectory: string;
  cniPluginDirectory?: string;
}

/**
 * Container networking on one node. Bridge mode gives each container a named network
 * namespace on the daemon's bridge through the CNI bridge/host-local/portmap/loopback
 * plugins; `host` shares the host's namespace; `none` gets a private one with only loopback.
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
  /** Records the ports of a container found running at engine start. */
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
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(config.subnet);
  const octets = match?.slice(1, 5).map(Number) ?? [];
  const prefix = Number(match?.[5] ?? -1);
  if (match === null || octets.some((octet) => octet > 255) || prefix < 8 || prefix > 30) {
    throw new InvalidArgumentError(`invalid subnet "${config.subnet}": use an IPv4 CIDR with a prefix from /8 to /30`);
  }
}

class NetworkManagerImpl implements NetworkManager {
  readonly #config: NetworkConfig;
  readonly #logger: Logger;
  readonly #netnsPrefix: string;
  readonly #pluginDirectory: string;
  /** "tcp/8080" -> container id, for every running container with published ports. */
  readonly #publishedPorts = new Map<string, string>();
  /** The bridge's outbound NAT, installed by the first bridge attach of this daemon run. */
  #masquerade: Promise<void> | null = null;

  constructor(options: { config: NetworkConfig; logger: Logger; daemonId: string }) {
    validateNetworkConfig(options.config);
    this.#config = options.config;
    this.#logger = options.logger.child({ component: "network" });
    this.#netnsPrefix = `shoal-${options.daemonId.slice(0, 8)}-`;
    this.#pluginDirectory = options.config.cniPluginDirectory ?? defaultCniPluginDirectory;
  }

  get bridgeName(): string {
    return this.#config.bridgeName;
  }

  get subnet(): string {
    return this.#config.subnet;
  }

  restore(containerId: string, attachment: NetworkAttachment): void {
    for (const port of attachment.ports) this.#publishedPorts.set(portKey(port), containerId);
  }

  async attach(
    containerId: string,
    options: { mode: NetworkMode; ports: readonly PortBinding[]; signal?: AbortSignal },
  ): Promise<{ namespace: NetworkNamespace; attachment: NetworkAttachment }> {
    const empty: NetworkAttachment = {
      mode: options.mode,
      netnsName: null,
      ipAddress: null,
      prefixLength: null,
      gateway: null,
      macAddress: null,
      ports: [],
      cniResult: null,
    };
    if (options.mode !== "bridge") {
      if (options.ports.length > 0) {
        throw new InvalidArgumentError(`published ports need the bridge network; this container uses "${options.mode}"`);
      }
      return { namespace: { kind: options.mode === "host" ? "host" : "new" }, attachment: empty };
    }
    await this.#ensureMasquerade();
    await this.#claimPorts(containerId, options.ports);
    const netnsName = `${this.#netnsPrefix}${containerId.slice(0, 12)}`;
    const attachment: NetworkAttachment = { ...empty, netnsName, ports: [...options.ports] };
    try {
      await this.#createNetns(netnsName, options.signal);
      const result = await this.#cniAdd(containerId, attachment, options.signal);
      const ip = result.ips.find((item) => !item.address.includes(":"));
      const [address = null, prefix = null] = ip?.address.split("/") ?? [];
      Object.assign(attachment, {
        ipAddress: address,
        prefixLength: prefix === null ? null : Number(prefix),
        gateway: ip?.gateway ?? null,
        macAddress: result.macAddress,
        cniResult: result.raw,
      });
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
    const netnsPath = join(netnsDirectory, attachment.netnsName);
    // The namespace goes first: the kernel then destroys the container's veth end (and with
    // it the host end) in the background, where the bridge plugin's DEL would delete it
    // under the rtnl lock, which serialised concurrent stops (10 took 250-340 ms, now
    // 90-120). Plugins must tolerate a DEL whose namespace is gone; the bridge plugin still
    // releases the address. Loopback keeps no state outside the namespace: no DEL for it.
    const deleted = await runCommand("ip", ["netns", "delete", attachment.netnsName]);
    if (deleted.code !== 0 && !/No such file/.test(deleted.stderr)) failures.push(lastErrorLine(deleted.stderr));
    const plugins = this.#pluginConfigs(attachment).filter((plugin) => plugin.config["type"] !== "loopback");
    // DEL in reverse order of ADD; plugins tolerate DEL of what they never added.
    for (const plugin of plugins.reverse()) {
      try {
        await invokeCniPlugin({
          pluginDirectory: this.#pluginDirectory,
          command: "DEL",
          containerId,
          netnsPath,
          interfaceName: plugin.interfaceName,
          config: plugin.config,
          ...(options.signal === undefined ? {} : { signal: options.signal }),
        });
      } catch (error) {
        failures.push(errorMessage(error));
      }
    }
    if (failures.length > 0) {
      throw new FailedPreconditionError(`network cleanup of ${containerId.slice(0, 12)} failed: ${failures.join("; ")}`);
    }
  }

  /** Not cancellable by one caller: concurrent attaches share the install. */
  async #ensureMasquerade(): Promise<void> {
    this.#masquerade ??= installBridgeMasquerade({ bridgeName: this.#config.bridgeName, subnet: this.#config.subnet }).catch((error: unknown) => {
      // The next attach tries again.
      this.#masquerade = null;
      throw error;
    });
    await this.#masquerade;
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

  async #createNetns(name: string, signal: AbortSignal | undefined): Promise<void> {
    const result = await runCommand("ip", ["netns", "add", name], signal === undefined ? {} : { signal });
    if (result.code !== 0) {
      throw new FailedPreconditionError(`cannot create network namespace ${name}: ${lastErrorLine(result.stderr)}`);
    }
  }

  #pluginConfigs(attachment: NetworkAttachment): { interfaceName: string; config: Record<string, unknown> }[] {
    const name = `shoal-${this.#config.bridgeName}`;
    const bridge = {
      cniVersion,
      name,
      type: "bridge",
      bridge: this.#config.bridgeName,
      isGateway: true,
      // One nftables rule for the subnet instead (see masquerade.ts).
      ipMasq: false,
      hairpinMode: true,
      ipam: {
        type: "host-local",
        ranges: [[{ subnet: this.#config.subnet }]],
        routes: [{ dst: "0.0.0.0/0" }],
        dataDir: this.#config.ipamDataDirectory,
      },
    };
    const portMappings = attachment.ports.map((port) => ({
      hostPort: port.hostPort,
      containerPort: port.containerPort,
      protocol: port.protocol,
      ...(port.hostIp === "0.0.0.0" ? {} : { hostIP: port.hostIp }),
    }));
    const configs = [
      { interfaceName: "lo", config: { cniVersion, name: "shoal-loopback", type: "loopback" } },
      { interfaceName: "eth0", config: bridge },
    ];
    if (portMappings.length > 0) {
      const portmap = { cniVersion, name, type: "portmap", snat: true, runtimeConfig: { portMappings } };
      configs.push({ interfaceName: "eth0", config: { ...portmap, ...(attachment.cniResult === null ? {} : { prevResult: attachment.cniResult }) } });
    }
    return configs.map((item) =>
      item.config.type === "bridge" && attachment.cniResult !== null
        ? { ...item, config: { ...item.config, prevResult: attachment.cniResult } }
        : item,
    );
  }

  async #cniAdd(containerId: string, attachment: NetworkAttachment, signal: AbortSignal | undefined): Promise<CniResult> {
    const netnsPath = join(netnsDirectory, attachment.netnsName ?? "");
    const [loopback, bridge] = this.#pluginConfigs(attachment);
    const invoke = async (plugin: { interfaceName: string; config: Record<string, unknown> }): Promise<CniResult | null> =>
      await invokeCniPlugin({
        pluginDirectory: this.#pluginDirectory,
        command: "ADD",
        containerId,
        netnsPath,
        interfaceName: plugin.interfaceName,
        config: plugin.config,
        ...(signal === undefined ? {} : { signal }),
      });
    if (loopback === undefined || bridge === undefined) throw new FailedPreconditionError("network plugin list is incomplete");
    await invoke(loopback);
    const result = await invoke(bridge);
    if (result === null) throw new FailedPreconditionError("the CNI bridge plugin returned no result");
    attachment.cniResult = result.raw;
    const portmap = this.#pluginConfigs(attachment)[2];
    if (portmap !== undefined) await invoke(portmap);
    return result;
  }
}

export function createNetworkManager(options: { config: NetworkConfig; logger: Logger; daemonId: string }): NetworkManager {
  return new NetworkManagerImpl(options);
}
