import assert from "node:assert/strict";
import { test } from "node:test";

import { derInteger, derNamedBits, derOid, derSequence, derSet, derTime, derValue } from "../../../src/manager/ca/der.js";

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex");

test("INTEGER is minimal and gets a zero byte when its high bit is set", () => {
  assert.equal(hex(derInteger(0)), "020100");
  assert.equal(hex(derInteger(127)), "02017f");
  assert.equal(hex(derInteger(128)), "02020080");
  assert.equal(hex(derInteger(256)), "02020100");
  assert.throws(() => derInteger(-1));
});

test("OBJECT IDENTIFIER packs the first two arcs and base-128 encodes the rest", () => {
  assert.equal(hex(derOid("2.5.4.3")), "0603550403");
  assert.equal(hex(derOid("1.2.840.10045.4.3.2")), "06082a8648ce3d040302");
  assert.throws(() => derOid("1.2.x"));
});

test("lengths of 128 bytes and more use the long form", () => {
  assert.equal(hex(derValue(0x04, Buffer.alloc(127))).slice(0, 4), "047f");
  assert.equal(hex(derValue(0x04, Buffer.alloc(128))).slice(0, 6), "048180");
  assert.equal(hex(derValue(0x04, Buffer.alloc(300))).slice(0, 8), "0482012c");
});

test("named bit strings drop trailing zero bits", () => {
  // digitalSignature only: one byte 0x80, 7 unused bits.
  assert.equal(hex(derNamedBits([0])), "03020780");
  // digitalSignature, keyCertSign, cRLSign: 0x86, 1 unused bit.
  assert.equal(hex(derNamedBits([0, 5, 6])), "03020186");
});

test("times before 2050 are UTCTime and later ones GeneralizedTime", () => {
  assert.equal(Buffer.from(derTime(Date.UTC(2026, 0, 2, 3, 4, 5, 999))).subarray(2).toString("ascii"), "260102030405Z");
  assert.equal(derTime(Date.UTC(2026, 0, 1))[0], 0x17);
  const late = derTime(Date.UTC(2051, 11, 31, 23, 59, 59));
  assert.equal(late[0], 0x18);
  assert.equal(late.subarray(2).toString("ascii"), "20511231235959Z");
});

test("SET OF sorts its elements, SEQUENCE keeps their order", () => {
  const a = derInteger(2);
  const b = derInteger(1);
  assert.equal(hex(derSet(a, b)), `3106${hex(b)}${hex(a)}`);
  assert.equal(hex(derSequence(a, b)), `3006${hex(a)}${hex(b)}`);
});
