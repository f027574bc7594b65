import { specLimits } from "./limits.js";
import {
  invalidField,
  parseArray,
  parseBoolean,
  parseEnum,
  parseFields,
  parseInteger,
  parseString,
  required,
  withDefault,
} from "./parse.js";
import { parseName } from "./service-spec.js";
import { parseLabelsField } from "./task-spec.js";
import type { Labels, Meta } from "./types.js";

/**
 * Cluster networks (swarmkit api/objects.proto Network) and what the allocator writes on
 * services and tasks: the addresses they hold on those networks. Addresses are IPv4 in
 * CIDR form ("10.240.1.5/24"): the prefix travels with the address so a worker can
 * configure an interface from the task alone.
 */

export const networkDrivers = ["overlay"] as const;
export type NetworkDriver = (typeof networkDrivers)[number];

export interface NetworkSpec {
  /** A DNS label, unique among networks. */
  name: string;
  labels: Labels;
  driver: NetworkDriver;
  /** The routing mesh's network: every service with ingress-mode ports is attached to it. */
  ingress: boolean;
}

export interface Network {
  id: string;
  meta: Meta;
  spec: NetworkSpec;
  /** The network's subnet from the cluster pool ("10.240.1.0/24"), chosen at creation. */
  subnet: string;
  /** The VXLAN network identifier its overlay uses; unique per network. */
  vni: number;
  /** The ingress network only: each node's own address on it (the routing mesh's source address). */
  nodeAddresses?: NodeNetworkAddress[];
}

export interface NodeNetworkAddress {
  nodeId: string;
  /** "10.240.0.9/24". */
  address: string;
}

/**
 * One task's place on one network: enough for a worker to build the overlay and configure
 * the task's interface without reading the network object.
 */
export interface NetworkAttachment {
  networkId: string;
  networkName: string;
  subnet: string;
  vni: number;
  /** The task's address, "10.240.1.5/24". */
  address: string;
}

/** A service's virtual IP on one network (endpoint mode vip). */
export interface VirtualIp {
  networkId: string;
  /** "10.240.1.2/24". */
  address: string;
}

/** What the allocator gave a service: its VIPs and the published ports it resolved. */
export interface ServiceEndpointState {
  virtualIps: VirtualIp[];
  /** Ingress-mode published ports, with the ones asked as 0 filled in, as "tcp/8080:80". */
  publishedPorts: PublishedPort[];
}

export interface PublishedPort {
  protocol: "tcp" | "udp";
  publishedPort: number;
  targetPort: number;
}

/** Most nodes an ingress network holds addresses for. */
export const nodeAddressesMax = 10_000;

/** The least and largest VXLAN network identifiers the allocator hands out (24-bit field; low ones left to hosts). */
export const vniMin = 4_096;
export const vniMax = 16_777_215;

const ipv4Cidr = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/u;

/** Parses "a.b.c.d/len" into a 32-bit unsigned address and prefix length; undefined when malformed. */
export function parseIpv4Cidr(text: string): { address: number; prefixLength: number } | undefined {
  const match = ipv4Cidr.exec(text);
  if (match === null) return undefined;
  const octets = match.slice(1, 5).map(Number);
  const prefixLength = Number(match[5]);
  if (octets.some((octet) => octet > 255) || prefixLength > 32) return undefined;
  const [a = 0, b = 0, c = 0, d = 0] = octets;
  return { address: ((a << 24) >>> 0) + (b << 16) + (c << 8) + d, prefixLength };
}

/** Formats a 32-bit unsigned address as dotted quad. */
export function formatIpv4(address: number): string {
  return [address >>> 24, (address >>> 16) & 255, (address >>> 8) & 255, address & 255].join(".");
}

const idText = { bytesMax: 64, allowEmpty: false, pattern: /^[a-z0-9]+$/u, patternText: "lower-case letters and digits" };

export function parseCidrText(value: unknown, path: string): string {
  const text = parseString(value, path, { bytesMax: 18 });
  if (parseIpv4Cidr(text) === undefined) throw invalidField(path, `must be an IPv4 address with prefix length like "10.240.1.5/24", got "${text}"`);
  return text;
}

export function parseVni(value: unknown, path: string): number {
  return parseInteger(value, path, { min: 1, max: vniMax });
}

export function parseNetworkAttachment(value: unknown, path: string): NetworkAttachment {
  const fields = parseFields(value, path, ["networkId", "networkName", "subnet", "vni", "address"]);
  return {
    networkId: required(fields, "networkId", path, (item, at) => parseString(item, at, idText)),
    networkName: required(fields, "networkName", path, (item, at) => parseString(item, at, { bytesMax: specLimits.nameBytesMax })),
    subnet: required(fields, "subnet", path, parseCidrText),
    vni: required(fields, "vni", path, parseVni),
    address: required(fields, "address", path, parseCidrText),
  };
}

export function parseNetworkAttachments(value: unknown, path: string): NetworkAttachment[] {
  return parseArray(value, path, specLimits.networksCountMax + 1, parseNetworkAttachment);
}

function parseVirtualIp(value: unknown, path: string): VirtualIp {
  const fields = parseFields(value, path, ["networkId", "address"]);
  return {
    networkId: required(fields, "networkId", path, (item, at) => parseString(item, at, idText)),
    address: required(fields, "address", path, parseCidrText),
  };
}

function parsePublishedPort(value: unknown, path: string): PublishedPort {
  const fields = parseFields(value, path, ["protocol", "publishedPort", "targetPort"]);
  const port = (item: unknown, at: string): number => parseInteger(item, at, { min: 1, max: 65_535 });
  return {
    protocol: required(fields, "protocol", path, (item, at) => parseEnum(item, at, ["tcp", "udp"] as const)),
    publishedPort: required(fields, "publishedPort", path, port),
    targetPort: required(fields, "targetPort", path, port),
  };
}

export function parseServiceEndpointState(value: unknown, path: string): ServiceEndpointState {
  const fields = parseFields(value, path, ["virtualIps", "publishedPorts"]);
  return {
    virtualIps: withDefault(fields, "virtualIps", path, [], (item, at) => parseArray(item, at, specLimits.networksCountMax + 1, parseVirtualIp)),
    publishedPorts: withDefault(fields, "publishedPorts", path, [], (item, at) => parseArray(item, at, specLimits.portsCountMax, parsePublishedPort)),
  };
}

export function parseNetworkSpec(value: unknown, path: string): NetworkSpec {
  const fields = parseFields(value, path, ["name", "labels", "driver", "ingress"]);
  return {
    name: required(fields, "name", path, parseName),
    labels: parseLabelsField(fields, "labels", path),
    driver: withDefault(fields, "driver", path, "overlay" as const, (item, at) => parseEnum(item, at, networkDrivers)),
    ingress: withDefault(fields, "ingress", path, false, parseBoolean),
  };
}

/** A network as stored; `meta` is parsed by the caller's parser (stored.ts owns it). */
export function parseNetworkObject(value: unknown, path: string, parseMeta: (value: unknown, path: string) => Meta): Network {
  const fields = parseFields(value, path, ["id", "meta", "spec", "subnet", "vni", "nodeAddresses"]);
  const network: Network = {
    id: required(fields, "id", path, (item, at) => parseString(item, at, idText)),
    meta: required(fields, "meta", path, parseMeta),
    spec: required(fields, "spec", path, parseNetworkSpec),
    subnet: required(fields, "subnet", path, parseCidrText),
    vni: required(fields, "vni", path, parseVni),
  };
  if (fields["nodeAddresses"] !== undefined) {
    network.nodeAddresses = parseArray(fields["nodeAddresses"], `${path}.nodeAddresses`, nodeAddressesMax, (item, at) => {
      const itemFields = parseFields(item, at, ["nodeId", "address"]);
      return {
        nodeId: required(itemFields, "nodeId", at, (text, where) => parseString(text, where, idText)),
        address: required(itemFields, "address", at, parseCidrText),
      };
    });
  }
  return network;
}
