import { InvalidArgumentError } from "../../common/errors.js";

/**
 * The slice of DNS (RFC 1035) the node's resolver needs, written by hand: parse one
 * question from a query, and build an answer with A records. Everything else the server
 * forwards as opaque bytes.
 */

/** Largest UDP message handled; larger answers set TC so the client retries over TCP (RFC 1035 §4.2.1). */
export const dnsUdpMessageBytesMax = 512;
/** Over TCP a message carries a 2-byte length, so this is the most it can hold (RFC 1035 §4.2.2). */
export const dnsTcpMessageBytesMax = 65_535;
/** Names longer than this are malformed (RFC 1035 §2.3.4). */
export const dnsNameBytesMax = 255;
const labelBytesMax = 63;
const headerBytes = 12;

export const dnsTypeA = 1;
export const dnsClassIn = 1;
const flagResponse = 0x8000;
const flagAuthoritative = 0x0400;
const flagTruncated = 0x0200;
const flagRecursionDesired = 0x0100;
const flagRecursionAvailable = 0x0080;
const opcodeMask = 0x7800;

export const dnsRcodeNoError = 0;
export const dnsRcodeFormatError = 1;
export const dnsRcodeServerFailure = 2;
export const dnsRcodeNameError = 3;

export interface DnsQuestion {
  id: number;
  flags: number;
  /** Lower-case, without the trailing dot. */
  name: string;
  type: number;
  class: number;
  /** The question's bytes as sent (name, type, class), echoed in the answer. */
  questionBytes: Buffer;
}

/** Parses a standard query with exactly one question; InvalidArgumentError otherwise. */
export function parseDnsQuery(message: Buffer): DnsQuestion {
  if (message.byteLength < headerBytes || message.byteLength > dnsUdpMessageBytesMax) throw new InvalidArgumentError("DNS message size out of range");
  const id = message.readUInt16BE(0);
  const flags = message.readUInt16BE(2);
  if ((flags & flagResponse) !== 0) throw new InvalidArgumentError("DNS message is a response, not a query");
  if ((flags & opcodeMask) !== 0) throw new InvalidArgumentError("only standard queries are answered");
  if (message.readUInt16BE(4) !== 1) throw new InvalidArgumentError("DNS query must carry exactly one question");
  const labels: string[] = [];
  let offset = headerBytes;
  let nameBytes = 0;
  for (;;) {
    const length = message[offset];
    if (length === undefined) throw new InvalidArgumentError("DNS name runs past the message");
    offset += 1;
    if (length === 0) break;
    if (length > labelBytesMax) throw new InvalidArgumentError("DNS label too long or compressed in a question");
    nameBytes += length + 1;
    if (nameBytes > dnsNameBytesMax || offset + length > message.byteLength) throw new InvalidArgumentError("DNS name too long");
    labels.push(message.subarray(offset, offset + length).toString("latin1").toLowerCase());
    offset += length;
  }
  if (offset + 4 > message.byteLength) throw new InvalidArgumentError("DNS question truncated");
  const type = message.readUInt16BE(offset);
  const qclass = message.readUInt16BE(offset + 2);
  return { id, flags, name: labels.join("."), type, class: qclass, questionBytes: message.subarray(headerBytes, offset + 4) };
}

/** An answer to `question` with the given IPv4 addresses as A records (none: an empty NOERROR, or `rcode`). */
export function buildDnsAnswer(question: DnsQuestion, addresses: readonly string[], options: { ttlSeconds: number; rcode?: number; messageBytesMax?: number }): Buffer {
  const messageBytesMax = options.messageBytesMax ?? dnsUdpMessageBytesMax;
  const records: Buffer[] = [];
  let size = headerBytes + question.questionBytes.byteLength;
  let truncated = false;
  for (const address of addresses) {
    const octets = address.split(".").map(Number);
    // Name: a pointer to the question's name at offset 12 (RFC 1035 §4.1.4).
    const record = Buffer.alloc(16);
    record.writeUInt16BE(0xc000 | headerBytes, 0);
    record.writeUInt16BE(dnsTypeA, 2);
    record.writeUInt16BE(dnsClassIn, 4);
    record.writeUInt32BE(options.ttlSeconds, 6);
    record.writeUInt16BE(4, 10);
    for (const [index, octet] of octets.entries()) record.writeUInt8(octet & 255, 12 + index);
    if (size + record.byteLength > messageBytesMax) {
      truncated = true;
      break;
    }
    size += record.byteLength;
    records.push(record);
  }
  const header = Buffer.alloc(headerBytes);
  header.writeUInt16BE(question.id, 0);
  const flags =
    flagResponse | flagAuthoritative | flagRecursionAvailable | (question.flags & flagRecursionDesired) | (truncated ? flagTruncated : 0) | ((options.rcode ?? dnsRcodeNoError) & 0xf);
  header.writeUInt16BE(flags, 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(records.length, 6);
  return Buffer.concat([header, question.questionBytes, ...records]);
}

/** A bare error answer for a message that did not parse, when at least its id can be read. */
export function buildDnsError(message: Buffer, rcode: number): Buffer | undefined {
  if (message.byteLength < headerBytes) return undefined;
  const header = Buffer.alloc(headerBytes);
  header.writeUInt16BE(message.readUInt16BE(0), 0);
  header.writeUInt16BE(flagResponse | flagRecursionAvailable | (rcode & 0xf), 2);
  return header;
}
