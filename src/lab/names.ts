import { createHash } from "node:crypto";

import { InvalidArgumentError } from "../common/errors.js";

/** Raft needs an odd number of managers to be useful; more than 7 only slows commits. */
export const labManagersMax = 7;
export const labWorkersMax = 50;
/** Lab names become parts of netns and directory names: short, lower-case, no dots. */
export const labNameBytesMax = 24;
/** The port every lab host's shoald listens on for cluster gRPC (each host has its own address). */
export const labGrpcPort = 4242;

export type LabRole = "manager" | "worker";

export function validateLabName(name: string): string {
  if (!/^[a-z0-9][a-z0-9-]*$/.test(name) || name.length > labNameBytesMax) {
    throw new InvalidArgumentError(`invalid lab name "${name}": use 1 to ${labNameBytesMax} lower-case letters, digits or '-'`);
  }
  return name;
}

export function validateLabShape(managers: number, workers: number): void {
  if (!Number.isInteger(managers) || managers < 1 || managers > labManagersMax) {
    throw new InvalidArgumentError(`--managers must be a whole number from 1 to ${labManagersMax}, not ${managers}`);
  }
  if (!Number.isInteger(workers) || workers < 0 || workers > labWorkersMax) {
    throw new InvalidArgumentError(`--workers must be a whole number from 0 to ${labWorkersMax}, not ${workers}`);
  }
}

/**
 * A 6-hex digest of the lab name. Interface names are limited to 15 bytes (IFNAMSIZ), so
 * links carry this digest instead of the (up to 24 bytes) name.
 */
export function labDigest(name: string): string {
  return createHash("sha256").update(name).digest("hex").slice(0, 6);
}

export function labBridgeName(name: string): string {
  return `lab-${labDigest(name)}`;
}

/** The root-netns end of a host's veth: "l" + digest + "-" + host fits 15 bytes up to w999. */
export function labVethName(name: string, host: string): string {
  return `l${labDigest(name)}-${host}`;
}

/** Network namespace names are file names under /run/netns, not interface names: no 15-byte limit. */
export function labNetnsName(name: string, host: string): string {
  return `lab-${name}-${host}`;
}

export function labHostNames(managers: number, workers: number): { name: string; role: LabRole }[] {
  const hosts: { name: string; role: LabRole }[] = [];
  for (let index = 1; index <= managers; index += 1) hosts.push({ name: `m${index}`, role: "manager" });
  for (let index = 1; index <= workers; index += 1) hosts.push({ name: `w${index}`, role: "worker" });
  return hosts;
}

/**
 * Lab subnets are 10.199.X.0/24. The engine inside each host picks its container subnet from
 * 10.200.0.0-10.249.255.0 (engine defaultSubnet), so a lab subnet can never shadow a host's
 * own container bridge.
 */
export const labSubnetPrefix = "10.199";

/** The third octet a lab tries first; the caller walks forward on collision. */
export function labSubnetOctetPreferred(name: string): number {
  return parseInt(labDigest(name).slice(0, 2), 16);
}

/** Managers get .11-.17, workers .101-.150: an address says the role at a glance. */
export function labHostAddress(octet: number, host: string): string {
  const index = Number(host.slice(1));
  const last = host.startsWith("m") ? 10 + index : 100 + index;
  return `${labSubnetPrefix}.${octet}.${last}`;
}
