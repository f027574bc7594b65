import { ConflictError, InvalidArgumentError } from "../../common/errors.js";

/** An IPv4 subnet as numbers: the network address and its prefix length. */
export interface Ipv4Subnet {
  readonly network: number;
  readonly prefixLength: number;
}

export function parseIpv4(text: string): number | null {
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (match === null) return null;
  const octets = match.slice(1, 5).map(Number);
  if (octets.some((octet) => octet > 255)) return null;
  return octets.reduce((value, octet) => value * 256 + octet, 0);
}

export function formatIpv4(value: number): string {
  return [value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255].join(".");
}

/** "10.88.0.0/24" (host bits must be zero, prefix /8 to /30). */
export function parseIpv4Subnet(text: string): Ipv4Subnet {
  const [address = "", prefix = ""] = text.split("/");
  const network = parseIpv4(address);
  const prefixLength = /^\d{1,2}$/.test(prefix) ? Number(prefix) : -1;
  if (network === null || prefixLength < 8 || prefixLength > 30) {
    throw new InvalidArgumentError(`invalid subnet "${text}": use an IPv4 CIDR with a prefix from /8 to /30`);
  }
  if (network % 2 ** (32 - prefixLength) !== 0) throw new InvalidArgumentError(`invalid subnet "${text}": the address has host bits set`);
  return { network, prefixLength };
}

/**
 * Container addresses on one node's bridge, kept in memory. The containers' own state
 * files are the durable record: at engine start every running container's address is
 * reserved again (restore) before any new one is handed out. The first host address is
 * the bridge's gateway; addresses go round-robin, as CNI's host-local does, so one just
 * released is not handed out again while peers may still hold its ARP entry.
 */
export class BridgeAddressPool {
  readonly subnet: Ipv4Subnet;
  readonly gateway: string;
  readonly #first: number;
  readonly #last: number;
  readonly #owners = new Map<number, string>();
  #next: number;

  constructor(subnet: string) {
    this.subnet = parseIpv4Subnet(subnet);
    const size = 2 ** (32 - this.subnet.prefixLength);
    this.gateway = formatIpv4(this.subnet.network + 1);
    this.#first = this.subnet.network + 2;
    this.#last = this.subnet.network + size - 2;
    this.#next = this.#first;
  }

  /** A free address for `owner` (ConflictError when the subnet is full). */
  allocate(owner: string): string {
    const count = this.#last - this.#first + 1;
    for (let step = 0; step < count; step += 1) {
      const candidate = this.#first + ((this.#next - this.#first + step) % count);
      if (this.#owners.has(candidate)) continue;
      this.#owners.set(candidate, owner);
      this.#next = candidate === this.#last ? this.#first : candidate + 1;
      return formatIpv4(candidate);
    }
    throw new ConflictError(`the bridge subnet ${formatIpv4(this.subnet.network)}/${this.subnet.prefixLength} has no free address: remove stopped containers or give the daemon a larger subnet`);
  }

  /** Marks an address a running container already holds (engine start); one outside this pool (an earlier subnet) cannot collide and is skipped. */
  reserve(address: string, owner: string): void {
    const value = parseIpv4(address);
    if (value === null || value < this.#first || value > this.#last) return;
    this.#owners.set(value, owner);
  }

  /** Frees `address` if `owner` holds it. */
  release(address: string, owner: string): void {
    const value = parseIpv4(address);
    if (value !== null && this.#owners.get(value) === owner) this.#owners.delete(value);
  }
}
