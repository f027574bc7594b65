import { createHash } from "node:crypto";

import { FailedPreconditionError, InvalidArgumentError } from "../../common/errors.js";
import { lastErrorLine, runCommand } from "../../common/command.js";

/** Linux limits interface names to 15 bytes. */
const interfaceNameBytesMax = 15;
const interfaceNamePattern = /^[a-zA-Z0-9_.-]+$/u;
const ipv4CidrPattern = /^(\d{1,3}\.){3}\d{1,3}\/\d{1,2}$/u;

/** One container interface on a bridge with an address chosen by the caller (not by IPAM). */
export interface BridgeInterfaceRequest {
  /** The container's network namespace: a name under /run/netns or an absolute path (/proc/PID/ns/net). */
  containerNetns: string;
  /** The bridge to plug the host end into; it must exist. */
  bridge: string;
  /** The interface name inside the container ("eth1"). */
  interfaceName: string;
  /** "10.240.1.5/24". */
  address: string;
  mtu: number;
  /** Distinguishes this interface from every other on the node (container id + network id). */
  key: string;
  /** Runs the host-side commands in this named netns instead of the caller's (tests, labs). */
  hostNetns?: string;
  /** Set on the container's end; the kernel picks a random one otherwise. */
  macAddress?: string;
  /**
   * Makes this the container's main interface: loopback comes up with it and the default
   * route goes through this gateway (the bridge's own address).
   */
  defaultGateway?: string;
  /** Lets traffic that leaves the bridge port come back through it: a container reaching itself through a published port. */
  hairpin?: boolean;
  /** Creates `containerNetns` (a name) in the same ip run: one process fewer per container. */
  createNetns?: boolean;
}

function checkInterfaceName(name: string, what: string): void {
  if (!interfaceNamePattern.test(name) || Buffer.byteLength(name) > interfaceNameBytesMax) {
    throw new InvalidArgumentError(`${what} "${name}" is not a valid interface name (up to 15 letters, digits, '-', '_' or '.')`);
  }
}

/** The host end's name: derived from the key, so detach finds it without stored state. */
export function bridgeInterfaceHostName(key: string): string {
  return `shv${createHash("sha256").update(key).digest("hex").slice(0, 11)}`;
}

const macAddressPattern = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/u;
const ipv4Pattern = /^(\d{1,3}\.){3}\d{1,3}$/u;

function netnsArguments(hostNetns: string | undefined): string[] {
  return hostNetns === undefined ? [] : ["-n", hostNetns];
}

/** Runs `ip -batch` in a netns: the caller's, a named one (`ip -n`), or one given by path (nsenter). */
async function ipBatch(netns: string | undefined, lines: readonly string[], signal: AbortSignal | undefined): Promise<{ code: number; stderr: string }> {
  const [command, args] =
    netns?.startsWith("/") === true ? ["nsenter", [`--net=${netns}`, "ip", "-batch", "-"]] : ["ip", [...netnsArguments(netns), "-batch", "-"]];
  return runCommand(command, args, { input: `${lines.join("\n")}\n`, ...(signal === undefined ? {} : { signal }) });
}

/**
 * Plugs a container into a bridge with a given address: a veth pair whose host end joins
 * the bridge and whose other end is created in the container's namespace as
 * `interfaceName`. The engine knows nothing of what the bridge carries; callers (the
 * worker's overlay) choose the bridge and the address. On failure nothing is left behind.
 */
export async function attachToBridge(request: BridgeInterfaceRequest, options: { signal?: AbortSignal } = {}): Promise<void> {
  checkInterfaceName(request.bridge, "bridge");
  checkInterfaceName(request.interfaceName, "interface");
  if (!ipv4CidrPattern.test(request.address)) throw new InvalidArgumentError(`address "${request.address}" must be IPv4 with a prefix length, like 10.240.1.5/24`);
  if (!Number.isInteger(request.mtu) || request.mtu < 576 || request.mtu > 9_000) throw new InvalidArgumentError(`mtu ${request.mtu} must be between 576 and 9000`);
  if (request.macAddress !== undefined && !macAddressPattern.test(request.macAddress)) throw new InvalidArgumentError(`MAC address "${request.macAddress}" must be six lower-case hex pairs`);
  if (request.defaultGateway !== undefined && !ipv4Pattern.test(request.defaultGateway)) throw new InvalidArgumentError(`gateway "${request.defaultGateway}" must be an IPv4 address`);
  if (request.createNetns === true && !interfaceNamePattern.test(request.containerNetns)) {
    throw new InvalidArgumentError(`network namespace "${request.containerNetns}" must be a name (letters, digits, '-', '_' or '.') to be created`);
  }
  const host = bridgeInterfaceHostName(request.key);
  const mac = request.macAddress === undefined ? "" : ` address ${request.macAddress}`;
  // The container's end is born in its namespace under its final name: nothing to move or rename.
  const created = await ipBatch(
    request.hostNetns,
    [
      ...(request.createNetns === true ? [`netns add ${request.containerNetns}`] : []),
      `link add ${host} mtu ${request.mtu} type veth peer name ${request.interfaceName}${mac} mtu ${request.mtu} netns ${request.containerNetns}`,
      `link set ${host} master ${request.bridge} up`,
      ...(request.hairpin === true ? [`link set ${host} type bridge_slave hairpin on`] : []),
    ],
    options.signal,
  );
  if (created.code !== 0) {
    await detachFromBridge(request, options).catch(() => undefined);
    throw new FailedPreconditionError(`cannot plug container interface into bridge ${request.bridge}: ${lastErrorLine(created.stderr)}`);
  }
  const gateway = request.defaultGateway;
  const inside = await ipBatch(
    request.containerNetns,
    [
      ...(gateway === undefined ? [] : ["link set lo up"]),
      `addr add ${request.address} dev ${request.interfaceName}`,
      `link set ${request.interfaceName} up`,
      ...(gateway === undefined ? [] : [`route add default via ${gateway} dev ${request.interfaceName}`]),
    ],
    options.signal,
  );
  if (inside.code !== 0) {
    await detachFromBridge(request, options).catch(() => undefined);
    throw new FailedPreconditionError(`cannot configure ${request.interfaceName} (${request.address}) in the container: ${lastErrorLine(inside.stderr)}`);
  }
}

/** Removes the interface attachToBridge made (deleting the host end deletes the pair). Idempotent. */
export async function detachFromBridge(request: Pick<BridgeInterfaceRequest, "key" | "hostNetns">, options: { signal?: AbortSignal } = {}): Promise<void> {
  const host = bridgeInterfaceHostName(request.key);
  const deleted = await runCommand("ip", [...netnsArguments(request.hostNetns), "link", "del", host], options.signal === undefined ? {} : { signal: options.signal });
  if (deleted.code !== 0 && !/Cannot find device|does not exist/u.test(deleted.stderr)) {
    throw new FailedPreconditionError(`cannot remove container interface ${host}: ${lastErrorLine(deleted.stderr)}`);
  }
}
