import assert from "node:assert/strict";

/**
 * A small DER (X.690) encoder: just the types an X.509 v3 certificate with the extensions
 * shoal issues needs. Every function returns the complete TLV encoding of one value, so
 * values nest by passing the result of one call to another.
 */

const tagBoolean = 0x01;
const tagInteger = 0x02;
const tagBitString = 0x03;
const tagOctetString = 0x04;
const tagOid = 0x06;
const tagUtf8String = 0x0c;
const tagUtcTime = 0x17;
const tagGeneralizedTime = 0x18;
const tagSequence = 0x30;
const tagSet = 0x31;
const classContext = 0x80;
const flagConstructed = 0x20;

/** Long-form lengths up to four bytes: certificates are far below 4 GiB. */
const lengthBytesMax = 4;

function encodeLength(length: number): Buffer {
  assert.ok(Number.isSafeInteger(length) && length >= 0, "DER length must be a non-negative integer");
  if (length < 0x80) return Buffer.from([length]);
  const bytes: number[] = [];
  for (let rest = length; rest > 0; rest = Math.floor(rest / 256)) bytes.unshift(rest % 256);
  assert.ok(bytes.length <= lengthBytesMax, "DER value too long");
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/** One tag-length-value triple. */
export function derValue(tag: number, content: Uint8Array): Buffer {
  assert.ok(Number.isInteger(tag) && tag >= 0 && tag <= 0xfe, "only single-byte tags are supported");
  return Buffer.concat([Buffer.from([tag]), encodeLength(content.length), content]);
}

export function derSequence(...children: readonly Uint8Array[]): Buffer {
  return derValue(tagSequence, Buffer.concat(children));
}

/** A SET OF: DER requires its elements sorted by their encodings. */
export function derSet(...children: readonly Uint8Array[]): Buffer {
  const sorted = [...children].map((child) => Buffer.from(child)).sort((left, right) => Buffer.compare(left, right));
  return derValue(tagSet, Buffer.concat(sorted));
}

export function derBoolean(value: boolean): Buffer {
  return derValue(tagBoolean, Buffer.from([value ? 0xff : 0x00]));
}

/** A non-negative INTEGER in minimal two's complement form. */
export function derInteger(value: bigint | number): Buffer {
  const big = BigInt(value);
  assert.ok(big >= 0n, "only non-negative integers are supported");
  let hex = big.toString(16);
  if (hex.length % 2 === 1) hex = `0${hex}`;
  let bytes = Buffer.from(hex, "hex");
  // A set high bit would read as negative: prefix a zero byte.
  const first = bytes[0] ?? 0;
  if (first >= 0x80) bytes = Buffer.concat([Buffer.from([0]), bytes]);
  return derValue(tagInteger, bytes);
}

/** A BIT STRING of whole bytes (keys, signatures). */
export function derBitString(bytes: Uint8Array): Buffer {
  return derValue(tagBitString, Buffer.concat([Buffer.from([0]), bytes]));
}

/**
 * A named BIT STRING (like KeyUsage) from the numbers of the bits that are set, bit 0 being
 * the most significant bit of the first byte. DER drops trailing zero bits.
 */
export function derNamedBits(bits: readonly number[]): Buffer {
  assert.ok(bits.length > 0, "a named bit string needs at least one bit");
  const highest = Math.max(...bits);
  const bytes = Buffer.alloc(Math.floor(highest / 8) + 1);
  for (const bit of bits) {
    assert.ok(Number.isInteger(bit) && bit >= 0, "bit numbers are non-negative integers");
    const index = Math.floor(bit / 8);
    bytes[index] = (bytes[index] ?? 0) | (0x80 >> bit % 8);
  }
  const unusedBits = 7 - (highest % 8);
  return derValue(tagBitString, Buffer.concat([Buffer.from([unusedBits]), bytes]));
}

export function derOctetString(bytes: Uint8Array): Buffer {
  return derValue(tagOctetString, bytes);
}

function encodeBase128(value: number): number[] {
  const out = [value & 0x7f];
  for (let rest = Math.floor(value / 128); rest > 0; rest = Math.floor(rest / 128)) out.unshift(0x80 | (rest & 0x7f));
  return out;
}

/** An OBJECT IDENTIFIER from its dotted form ("2.5.4.3"). */
export function derOid(dotted: string): Buffer {
  assert.match(dotted, /^[0-2]\.\d+(\.\d+)*$/, `malformed object identifier ${dotted}`);
  const arcs = dotted.split(".").map(Number);
  const [first = 0, second = 0, ...rest] = arcs;
  assert.ok(arcs.every((arc) => Number.isSafeInteger(arc)), `object identifier arc too large in ${dotted}`);
  assert.ok(first === 2 || second < 40, `second arc of ${dotted} must be below 40`);
  const bytes = [...encodeBase128(first * 40 + second), ...rest.flatMap(encodeBase128)];
  return derValue(tagOid, Buffer.from(bytes));
}

export function derUtf8String(text: string): Buffer {
  return derValue(tagUtf8String, Buffer.from(text, "utf8"));
}

function twoDigits(value: number): string {
  return String(value).padStart(2, "0");
}

/**
 * An X.509 Time: UTCTime for 1950..2049 and GeneralizedTime otherwise (RFC 5280 §4.1.2.5),
 * in whole seconds of UTC.
 */
export function derTime(epochMs: number): Buffer {
  const date = new Date(epochMs);
  assert.ok(!Number.isNaN(date.getTime()), "invalid time");
  const year = date.getUTCFullYear();
  const rest =
    twoDigits(date.getUTCMonth() + 1) +
    twoDigits(date.getUTCDate()) +
    twoDigits(date.getUTCHours()) +
    twoDigits(date.getUTCMinutes()) +
    twoDigits(date.getUTCSeconds()) +
    "Z";
  if (year >= 1950 && year < 2050) return derValue(tagUtcTime, Buffer.from(twoDigits(year % 100) + rest, "ascii"));
  assert.ok(year >= 0 && year <= 9999, "year out of range for GeneralizedTime");
  return derValue(tagGeneralizedTime, Buffer.from(String(year).padStart(4, "0") + rest, "ascii"));
}

/** [tag] EXPLICIT: wraps a complete encoding in a constructed context-specific tag. */
export function derExplicit(tag: number, inner: Uint8Array): Buffer {
  assert.ok(tag >= 0 && tag <= 30, "context tag out of range");
  return derValue(classContext | flagConstructed | tag, inner);
}

/** [tag] IMPLICIT for a primitive value: the content bytes under a context-specific tag. */
export function derImplicit(tag: number, content: Uint8Array): Buffer {
  assert.ok(tag >= 0 && tag <= 30, "context tag out of range");
  return derValue(classContext | tag, content);
}
