import { createHash } from "node:crypto";

import { InvalidArgumentError } from "../../common/errors.js";

/** A validated `sha256:<64 lowercase hex>` string; the only digest form shoal accepts. */
export type Digest = string & { readonly digestBrand: unique symbol };

const digestPattern = /^sha256:[a-f0-9]{64}$/u;

export function isDigest(value: unknown): value is Digest {
  return typeof value === "string" && digestPattern.test(value);
}

/**
 * Checks a digest before any use, above all as a path component: a digest that came from a
 * manifest, an archive or a URL is attacker-controlled text until it matches the pattern.
 */
export function parseDigest(value: unknown, what = "digest"): Digest {
  if (isDigest(value)) return value;
  const shown = typeof value === "string" ? `"${value.slice(0, 100)}"` : typeof value;
  throw new InvalidArgumentError(`${what} ${shown} is not a sha256 digest (sha256: followed by 64 lowercase hex digits)`);
}

/** The 64 hex digits of a digest. */
export function digestHex(digest: Digest): string {
  return digest.slice("sha256:".length);
}

export function sha256Digest(data: Uint8Array | string): Digest {
  return parseDigest(`sha256:${createHash("sha256").update(data).digest("hex")}`);
}

/** OCI platform fields used for selecting a manifest from an index. */
export interface Platform {
  readonly os: string;
  readonly architecture: string;
  readonly variant?: string;
}

/** An OCI content descriptor: what a blob is, its digest and its exact size. */
export interface Descriptor {
  readonly mediaType: string;
  readonly digest: Digest;
  readonly size: number;
  readonly platform?: Platform;
  readonly annotations?: Readonly<Record<string, string>>;
}
