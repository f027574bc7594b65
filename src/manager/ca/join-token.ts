import { createHash, timingSafeEqual } from "node:crypto";

import { FailedPreconditionError, InvalidArgumentError } from "../../common/errors.js";
import type { JoinTokens, NodeRole } from "../objects/index.js";

/**
 * Join tokens as swarm makes them: `SWMTKN-1-<root CA digest>-<secret>`. The digest (SHA-256
 * of the root CA certificate's DER, in base 36) lets a joining node check the CA it is
 * handed before it trusts it; the secret (128 random bits, base 36) proves to the CA that
 * the node may join, and in which role.
 */

const tokenPrefix = "SWMTKN";
const tokenVersion = "1";
/** 256 bits in base 36 take at most 50 digits. */
export const joinTokenDigestLength = 50;
/** 128 bits in base 36 take at most 25 digits. */
export const joinTokenSecretLength = 25;
const secretRandomBytes = 16;
/** Longer input is refused before any parsing work. */
export const joinTokenLengthMax = 128;

export interface JoinToken {
  /** Base 36 SHA-256 of the root CA certificate DER, zero-padded to joinTokenDigestLength. */
  rootCaDigest: string;
  secret: string;
}

function base36(bytes: Uint8Array, length: number): string {
  let value = 0n;
  for (const byte of bytes) value = (value << 8n) | BigInt(byte);
  return value.toString(36).padStart(length, "0");
}

/** The digest part of join tokens for the root CA with certificate `caCertDer`. */
export function rootCaTokenDigest(caCertDer: Uint8Array): string {
  return base36(createHash("sha256").update(caCertDer).digest(), joinTokenDigestLength);
}

/** A fresh token for the root CA `caCertDer`, with a secret from `randomBytes`. */
export function generateJoinToken(options: { caCertDer: Uint8Array; randomBytes: (size: number) => Uint8Array }): string {
  const secret = base36(options.randomBytes(secretRandomBytes), joinTokenSecretLength);
  return `${tokenPrefix}-${tokenVersion}-${rootCaTokenDigest(options.caCertDer)}-${secret}`;
}

/** Worker and manager tokens with independent secrets. */
export function generateJoinTokens(options: { caCertDer: Uint8Array; randomBytes: (size: number) => Uint8Array }): JoinTokens {
  return { worker: generateJoinToken(options), manager: generateJoinToken(options) };
}

/**
 * `tokens` with a new secret for `role`, pinning the same root CA as the token it replaces:
 * the old token of that role stops working once the result is stored; the other role's
 * token is unchanged. Throws InvalidArgumentError when the stored token does not parse.
 */
export function rotateJoinToken(tokens: JoinTokens, role: NodeRole, options: { randomBytes: (size: number) => Uint8Array }): JoinTokens {
  const { rootCaDigest } = parseJoinToken(tokens[role]);
  const secret = base36(options.randomBytes(secretRandomBytes), joinTokenSecretLength);
  return { ...tokens, [role]: `${tokenPrefix}-${tokenVersion}-${rootCaDigest}-${secret}` };
}

const base36Pattern = /^[0-9a-z]+$/;

/**
 * Parses a join token strictly: prefix, version, a 50-digit and a 25-digit lower-case
 * base 36 part. Throws InvalidArgumentError naming the part that is wrong.
 */
export function parseJoinToken(text: string): JoinToken {
  const help = `a join token looks like ${tokenPrefix}-${tokenVersion}-<${joinTokenDigestLength} characters>-<${joinTokenSecretLength} characters>; copy it again from "shoal swarm join-token"`;
  if (text.length > joinTokenLengthMax) throw new InvalidArgumentError(`the join token is too long: ${help}`);
  const parts = text.split("-");
  if (parts.length !== 4) throw new InvalidArgumentError(`the join token has ${parts.length} dash-separated parts, not 4: ${help}`);
  const [prefix = "", version = "", rootCaDigest = "", secret = ""] = parts;
  if (prefix !== tokenPrefix) throw new InvalidArgumentError(`the join token does not start with ${tokenPrefix}: ${help}`);
  if (version !== tokenVersion) throw new InvalidArgumentError(`join token version "${version}" is not supported: ${help}`);
  if (rootCaDigest.length !== joinTokenDigestLength || !base36Pattern.test(rootCaDigest)) {
    throw new InvalidArgumentError(`the join token's CA digest is malformed: ${help}`);
  }
  if (secret.length !== joinTokenSecretLength || !base36Pattern.test(secret)) {
    throw new InvalidArgumentError(`the join token's secret is malformed: ${help}`);
  }
  return { rootCaDigest, secret };
}

function sameSecret(left: string, right: string): boolean {
  const a = Buffer.from(left);
  const b = Buffer.from(right);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * The role a presented token grants, or undefined when it matches neither current token.
 * Both secrets are always compared in constant time, so timing tells nothing about them.
 * Throws FailedPreconditionError when the token pins another root CA.
 */
export function matchJoinToken(presented: JoinToken, tokens: JoinTokens, caCertDer: Uint8Array): NodeRole | undefined {
  if (presented.rootCaDigest !== rootCaTokenDigest(caCertDer)) {
    throw new FailedPreconditionError("the join token was made for another cluster's root CA: get a current token from a manager of this cluster");
  }
  const worker = sameSecret(presented.secret, parseJoinToken(tokens.worker).secret);
  const manager = sameSecret(presented.secret, parseJoinToken(tokens.manager).secret);
  if (manager) return "manager";
  if (worker) return "worker";
  return undefined;
}

/**
 * The joining side's check: the root CA certificate a manager sent must be the one the
 * token pins. Throws FailedPreconditionError otherwise (a wrong manager, or a man in the
 * middle).
 */
export function verifyRootCaForToken(token: JoinToken, caCertDer: Uint8Array): void {
  if (rootCaTokenDigest(caCertDer) !== token.rootCaDigest) {
    throw new FailedPreconditionError(
      "the manager's root CA certificate does not match the join token: check the manager address and the token",
    );
  }
}
