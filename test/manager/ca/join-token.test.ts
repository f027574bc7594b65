import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { test } from "node:test";

import { FailedPreconditionError, InvalidArgumentError } from "../../../src/common/errors.js";
import {
  createCertificateAuthority,
  generateJoinTokens,
  matchJoinToken,
  parseJoinToken,
  rootCaTokenDigest,
  rotateJoinToken,
  verifyRootCaForToken,
} from "../../../src/manager/ca/index.js";
import { fixedClock } from "./fixtures.js";

const clock = fixedClock(Date.UTC(2026, 10, 22));
const authority = createCertificateAuthority({ clock, randomBytes });
const other = createCertificateAuthority({ clock, randomBytes });
const caCertDer = authority.certDer;

test("tokens are SWMTKN-1, the base 36 digest of the CA and a 25-character secret", () => {
  const tokens = generateJoinTokens({ caCertDer, randomBytes });
  assert.match(tokens.worker, /^SWMTKN-1-[0-9a-z]{50}-[0-9a-z]{25}$/);
  const parsed = parseJoinToken(tokens.worker);
  assert.equal(parsed.rootCaDigest, rootCaTokenDigest(caCertDer));
  assert.notEqual(parseJoinToken(tokens.manager).secret, parsed.secret);
});

test("the digest is the SHA-256 of the CA certificate in base 36", () => {
  let value = 0n;
  for (const character of rootCaTokenDigest(caCertDer)) value = value * 36n + BigInt(Number.parseInt(character, 36));
  assert.equal(value, BigInt(`0x${createHash("sha256").update(caCertDer).digest("hex")}`));
});

test("malformed tokens are rejected, naming what is wrong", () => {
  const good = generateJoinTokens({ caCertDer, randomBytes }).worker;
  const [, , digest = "", secret = ""] = good.split("-");
  const cases: Array<[string, RegExp]> = [
    ["", /parts/],
    ["SWMTKN-1-abc", /parts/],
    [`SWMTKX-1-${digest}-${secret}`, /start with SWMTKN/],
    [`SWMTKN-2-${digest}-${secret}`, /version "2"/],
    [`SWMTKN-1-${digest.slice(1)}-${secret}`, /CA digest/],
    [`SWMTKN-1-${digest.toUpperCase()}-${secret}`, /CA digest/],
    [`SWMTKN-1-${digest}-${secret}x`, /secret/],
    [`SWMTKN-1-${digest}-${secret.slice(0, 24)}!`, /secret/],
    [`SWMTKN-1-${digest}-${secret}-extra`, /parts/],
    [`${good}${"x".repeat(200)}`, /too long/],
  ];
  for (const [token, message] of cases) {
    assert.throws(() => parseJoinToken(token), (error: unknown) => error instanceof InvalidArgumentError && message.test(error.message), token);
  }
});

test("a token grants the role whose secret it carries, and no other", () => {
  const tokens = generateJoinTokens({ caCertDer, randomBytes });
  assert.equal(matchJoinToken(parseJoinToken(tokens.worker), tokens, caCertDer), "worker");
  assert.equal(matchJoinToken(parseJoinToken(tokens.manager), tokens, caCertDer), "manager");
  const wrongSecret = { ...parseJoinToken(tokens.worker), secret: "0".repeat(25) };
  assert.equal(matchJoinToken(wrongSecret, tokens, caCertDer), undefined);
});

test("a token for another CA is refused by the CA", () => {
  const tokens = generateJoinTokens({ caCertDer, randomBytes });
  const foreign = generateJoinTokens({ caCertDer: other.certDer, randomBytes });
  assert.throws(() => matchJoinToken(parseJoinToken(foreign.worker), tokens, caCertDer), FailedPreconditionError);
});

test("rotation replaces one role's secret and invalidates the old token", () => {
  const tokens = generateJoinTokens({ caCertDer, randomBytes });
  const rotated = rotateJoinToken(tokens, "worker", { randomBytes });
  assert.equal(rotated.manager, tokens.manager);
  assert.notEqual(rotated.worker, tokens.worker);
  assert.equal(parseJoinToken(rotated.worker).rootCaDigest, rootCaTokenDigest(caCertDer));
  assert.equal(matchJoinToken(parseJoinToken(tokens.worker), rotated, caCertDer), undefined);
  assert.equal(matchJoinToken(parseJoinToken(rotated.worker), rotated, caCertDer), "worker");
});

test("the joining side refuses a CA whose digest differs from the token's", () => {
  const token = parseJoinToken(generateJoinTokens({ caCertDer, randomBytes }).worker);
  verifyRootCaForToken(token, caCertDer);
  assert.throws(() => verifyRootCaForToken(token, other.certDer), FailedPreconditionError);
});
