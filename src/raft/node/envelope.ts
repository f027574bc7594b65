import { InternalError } from "../../common/errors.js";
import { visitInSlices } from "../../common/slices.js";
import type { NodeId } from "../core/types.js";
import { ByteReader, ByteWriter, DecodeError } from "../wal/codec.js";

/**
 * The driver's framing inside raft payloads, invisible to the state machine:
 * - a normal entry carries [version u8][proposer nonce u64][sequence u64][application data],
 *   so the node that proposed it can recognise it when it is applied;
 * - a snapshot carries the member address book next to the state machine's bytes, so a
 *   restarted or caught-up node knows where its peers are.
 */

const entryEnvelopeVersion = 1;
export const entryEnvelopeBytes = 17;

/**
 * The written bytes as a plain Uint8Array, without a copy: each writer here is sized for
 * exactly what it writes, so the view holds no slack. A copy cost 40 ms per 32 MiB of
 * snapshot on the event loop, and one allocation per proposal.
 */
function writtenBytes(writer: ByteWriter): Uint8Array {
  const view = writer.view();
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

export interface ProposalId {
  readonly nonce: number;
  readonly sequence: number;
}

export function encodeEntryEnvelope(id: ProposalId, data: Uint8Array): Uint8Array {
  const writer = new ByteWriter(entryEnvelopeBytes + data.length);
  writer.u8(entryEnvelopeVersion);
  writer.u64(id.nonce);
  writer.u64(id.sequence);
  writer.raw(data);
  return writtenBytes(writer);
}

/** Splits an entry written by encodeEntryEnvelope; a malformed one is a driver bug. */
export function decodeEntryEnvelope(bytes: Uint8Array, index: number): { id: ProposalId; data: Uint8Array } {
  try {
    const reader = new ByteReader(bytes, 0, entryEnvelopeBytes);
    const version = reader.u8();
    if (version !== entryEnvelopeVersion) throw new DecodeError(`unknown envelope version ${version}`);
    const nonce = reader.u64();
    const sequence = reader.u64();
    return { id: { nonce, sequence }, data: bytes.subarray(entryEnvelopeBytes) };
  } catch (error) {
    throw new InternalError(`committed entry ${index} has a malformed envelope`, { cause: error });
  }
}

export interface SnapshotEnvelope {
  readonly members: ReadonlyMap<NodeId, string>;
  readonly data: Uint8Array;
}

/**
 * A state machine's snapshot bytes: one array, or parts that joined in order are the bytes
 * (so that a state encoded in pieces is copied once, here, rather than joined first).
 */
export type SnapshotBytes = Uint8Array | readonly Uint8Array[];

/**
 * Bytes of a snapshot copied into its envelope per turn of the event loop, about 0.2 ms
 * into fresh memory. The 2.7 MB of the raft bench's state copied in one go held a member's
 * loop for 2-3.4 ms, and every put waiting on that member with it.
 */
export const envelopeCopySliceBytes = 256 * 1024;

/** The snapshot envelope, its data copied in slices (see envelopeCopySliceBytes). */
export async function encodeSnapshotEnvelope(envelope: {
  readonly members: ReadonlyMap<NodeId, string>;
  readonly data: SnapshotBytes;
}): Promise<Uint8Array> {
  const parts = envelope.data instanceof Uint8Array ? [envelope.data] : envelope.data;
  const dataBytes = parts.reduce((sum, part) => sum + part.length, 0);
  const addresses = [...envelope.members].map(([id, address]) => ({ id, address: Buffer.from(address, "utf8") }));
  const addressBytes = addresses.reduce((sum, { address }) => sum + 8 + 4 + address.length, 0);
  const writer = new ByteWriter(4 + addressBytes + 4 + dataBytes);
  writer.u32(addresses.length);
  for (const { id, address } of addresses) {
    writer.u64(id);
    writer.bytes(address);
  }
  // The layout of writer.bytes(data), with the data in parts.
  writer.u32(dataBytes);
  await visitInSlices(parts, envelopeCopySliceBytes, (slice) => writer.raw(slice));
  return writtenBytes(writer);
}

const addressBookSizeMax = 1024;

export function decodeSnapshotEnvelope(bytes: Uint8Array): SnapshotEnvelope {
  try {
    const reader = new ByteReader(bytes);
    const count = reader.u32();
    if (count > addressBookSizeMax) throw new DecodeError(`address book of ${count} members`);
    const members = new Map<NodeId, string>();
    for (let index = 0; index < count; index += 1) {
      const id = reader.u64();
      members.set(id, Buffer.from(reader.bytes()).toString("utf8"));
    }
    const data = reader.bytes();
    reader.end();
    return { members, data };
  } catch (error) {
    throw new InternalError("snapshot data has a malformed envelope", { cause: error });
  }
}
