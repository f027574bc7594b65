import assert from "node:assert/strict";

import { InvalidArgumentError, ResourceExhaustedError } from "../../common/errors.js";
import { formatIpv4, parseIpv4Cidr } from "../objects/index.js";

/** The longest prefix a network may have: a /30 still leaves two usable addresses. */
export const networkPrefixLengthMax = 30;
/** The shortest prefix a network may have: bounds the pool's bitmap (64 Ki addresses). */
export const networkPrefixLengthMin = 16;

/**
 * The free and used host addresses of one subnet. The network and broadcast addresses are
 * never handed out. Allocation moves round the subnet from the last address handed out,
 * so an address just freed is the last to be reused: a neighbor entry still cached on
 * some node for a removed task then has time to expire before the address means
 * another task.
 */
export class AddressPool {
  readonly subnet: string;
  readonly prefixLength: number;
  readonly #base: number;
  readonly #hostCount: number;
  readonly #used: Uint8Array;
  #usedCount = 0;
  #next = 0;

  constructor(subnet: string) {
    const parsed = parseIpv4Cidr(subnet);
    if (parsed === undefined) throw new InvalidArgumentError(`subnet "${subnet}" is not an IPv4 CIDR like 10.240.1.0/24`);
    if (parsed.prefixLength > networkPrefixLengthMax || parsed.prefixLength < networkPrefixLengthMin) {
      throw new InvalidArgumentError(`subnet "${subnet}": prefix length must be between ${networkPrefixLengthMin} and ${networkPrefixLengthMax}`);
    }
    const size = 2 ** (32 - parsed.prefixLength);
    this.#base = parsed.address - (parsed.address % size);
    if (this.#base !== parsed.address) throw new InvalidArgumentError(`subnet "${subnet}" has host bits set; use ${formatIpv4(this.#base)}/${parsed.prefixLength}`);
    this.subnet = subnet;
    this.prefixLength = parsed.prefixLength;
    this.#hostCount = size - 2;
    this.#used = new Uint8Array(this.#hostCount);
  }

  /** Addresses the pool can hand out in all. */
  get size(): number {
    return this.#hostCount;
  }

  get usedCount(): number {
    return this.#usedCount;
  }

  /** Hands out a free address as "a.b.c.d/len". ResourceExhaustedError when none is left. */
  allocate(): string {
    if (this.#usedCount === this.#hostCount) {
      throw new ResourceExhaustedError(`network ${this.subnet} has no free address left (${this.#hostCount} in use); remove tasks or use a larger subnet`);
    }
    for (let step = 0; step < this.#hostCount; step += 1) {
      const offset = (this.#next + step) % this.#hostCount;
      if (this.#used[offset] === 0) {
        this.#used[offset] = 1;
        this.#usedCount += 1;
        this.#next = (offset + 1) % this.#hostCount;
        return this.#format(offset);
      }
    }
    assert.fail("a pool with free addresses finds one");
  }

  /** Marks an address already held (read back from the store) as used; false when it is outside the subnet or taken. */
  claim(address: string): boolean {
    const offset = this.#offsetOf(address);
    if (offset === undefined || this.#used[offset] === 1) return false;
    this.#used[offset] = 1;
    this.#usedCount += 1;
    return true;
  }

  /** Frees an address; false when it was not in use. */
  release(address: string): boolean {
    const offset = this.#offsetOf(address);
    if (offset === undefined || this.#used[offset] === 0) return false;
    this.#used[offset] = 0;
    this.#usedCount -= 1;
    return true;
  }

  #format(offset: number): string {
    return `${formatIpv4(this.#base + 1 + offset)}/${this.prefixLength}`;
  }

  #offsetOf(address: string): number | undefined {
    const parsed = parseIpv4Cidr(address);
    if (parsed === undefined || parsed.prefixLength !== this.prefixLength) return undefined;
    const offset = parsed.address - this.#base - 1;
    return offset >= 0 && offset < this.#hostCount ? offset : undefined;
  }
}
