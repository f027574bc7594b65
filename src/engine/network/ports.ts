import { createServer } from "node:net";
import { createSocket } from "node:dgram";

import { InvalidArgumentError } from "../../common/errors.js";

export type PortProtocol = "tcp" | "udp";

/** One published port: traffic to hostIp:hostPort reaches the container's containerPort. */
export interface PortBinding {
  hostIp: string;
  hostPort: number;
  containerPort: number;
  protocol: PortProtocol;
}

function parsePort(text: string, what: string, spec: string): number {
  if (!/^[0-9]{1,5}$/.test(text)) throw new InvalidArgumentError(`invalid ${what} in "${spec}": use a number 1-65535`);
  const port = Number(text);
  if (port < 1 || port > 65535) throw new InvalidArgumentError(`invalid ${what} in "${spec}": use a number 1-65535`);
  return port;
}

/**
 * Parses Docker's `-p` forms: `hostPort:containerPort[/proto]` and
 * `ip:hostPort:containerPort[/proto]` (tcp by default). A port range is not supported.
 */
export function parsePortBinding(spec: string): PortBinding {
  const [ports = "", protocolText = "tcp", extra] = spec.split("/");
  if (extra !== undefined || (protocolText !== "tcp" && protocolText !== "udp")) {
    throw new InvalidArgumentError(`invalid port "${spec}": the protocol must be tcp or udp`);
  }
  const parts = ports.split(":");
  if (parts.length < 2 || parts.length > 3) {
    throw new InvalidArgumentError(`invalid port "${spec}": use hostPort:containerPort[/tcp|udp] or ip:hostPort:containerPort`);
  }
  const hostIp = parts.length === 3 ? (parts[0] ?? "") : "0.0.0.0";
  if (!/^[0-9]{1,3}(\.[0-9]{1,3}){3}$/.test(hostIp)) {
    throw new InvalidArgumentError(`invalid host address "${hostIp}" in "${spec}": use an IPv4 address`);
  }
  return {
    hostIp,
    hostPort: parsePort(parts.at(-2) ?? "", "host port", spec),
    containerPort: parsePort(parts.at(-1) ?? "", "container port", spec),
    protocol: protocolText,
  };
}

export function portKey(binding: { hostPort: number; protocol: PortProtocol }): string {
  return `${binding.protocol}/${binding.hostPort}`;
}

/**
 * True when a host process already listens on the port. Port publishing rewrites packets
 * with NAT rules and never binds, so without this check two claims would silently shadow.
 */
export function isHostPortInUse(binding: PortBinding): Promise<boolean> {
  return new Promise((resolve) => {
    if (binding.protocol === "udp") {
      const socket = createSocket("udp4");
      socket.once("error", () => {
        socket.close();
        resolve(true);
      });
      socket.bind(binding.hostPort, binding.hostIp, () => socket.close(() => resolve(false)));
      return;
    }
    const server = createServer();
    server.once("error", () => resolve(true));
    server.listen({ port: binding.hostPort, host: binding.hostIp, exclusive: true }, () => {
      server.close(() => resolve(false));
    });
  });
}
