import { InvalidArgumentError } from "../common/errors.js";

/** Collects a repeatable option (`-e A=1 -e B=2`). */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

const memoryUnits: Record<string, number> = { "": 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/** "512m", "1g", "1048576" -> bytes, as `docker run --memory` reads them. */
export function parseMemoryBytes(value: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([bkmgt]?)b?$/i.exec(value.trim());
  const unit = memoryUnits[(match?.[2] ?? "").toLowerCase()];
  if (match === null || unit === undefined) {
    throw new InvalidArgumentError(`invalid memory size "${value}": use a number with an optional unit b, k, m or g (e.g. 512m)`);
  }
  return Math.floor(Number(match[1]) * unit);
}

/** "1.5" -> 1.5e9 nano-CPUs, as `docker run --cpus`. */
export function parseNanoCpus(value: string): number {
  const cpus = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value) || cpus <= 0) throw new InvalidArgumentError(`invalid --cpus "${value}": use a positive number such as 0.5 or 2`);
  return Math.round(cpus * 1e9);
}

export interface PortBinding {
  readonly containerPort: string; // "80/tcp"
  readonly hostIp: string;
  readonly hostPort: string; // "" = any free port
}

/** `-p [ip:][hostPort:]containerPort[/proto]`. */
export function parsePublish(value: string): PortBinding {
  const match = /^(?:(?:(\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]):)?(\d{1,5})?:)?(\d{1,5})(?:\/(tcp|udp|sctp))?$/.exec(value);
  if (match === null) throw new InvalidArgumentError(`invalid port mapping "${value}": use [IP:][HOST_PORT:]CONTAINER_PORT[/tcp|udp]`);
  const [, ip = "", hostPort = "", containerPort = "", protocol = "tcp"] = match;
  for (const port of [hostPort, containerPort]) {
    if (port !== "" && (Number(port) < 1 || Number(port) > 65_535)) throw new InvalidArgumentError(`invalid port ${port} in "${value}": ports are 1-65535`);
  }
  return { containerPort: `${containerPort}/${protocol}`, hostIp: ip.replace(/^\[|\]$/g, ""), hostPort };
}

/** `-e NAME=value`, or `-e NAME` to pass the caller's own value through, as docker does. */
export function parseEnv(value: string, env: Readonly<Record<string, string | undefined>>): string | undefined {
  if (value.includes("=")) {
    if (value.startsWith("=")) throw new InvalidArgumentError(`invalid environment variable "${value}": the name is empty`);
    return value;
  }
  const own = env[value];
  return own === undefined ? undefined : `${value}=${own}`;
}

/** Publishes as the Docker API wants them: PortBindings and ExposedPorts. */
export function portBindings(bindings: readonly PortBinding[]): { PortBindings: Record<string, Array<{ HostIp: string; HostPort: string }>>; ExposedPorts: Record<string, Record<string, never>> } {
  const PortBindings: Record<string, Array<{ HostIp: string; HostPort: string }>> = {};
  const ExposedPorts: Record<string, Record<string, never>> = {};
  for (const binding of bindings) {
    (PortBindings[binding.containerPort] ??= []).push({ HostIp: binding.hostIp, HostPort: binding.hostPort });
    ExposedPorts[binding.containerPort] = {};
  }
  return { PortBindings, ExposedPorts };
}
