import type { ConfState, Entry, EntryType, HardState, NodeId, SnapshotMetadata } from "../core/types.js";

/**
 * Little-endian binary encoding of the raft data model for the WAL and snapshot files.
 * Numbers are written as u64 (two u32 halves) and read back only when they are safe
 * integers; every read checks the remaining length, so a decoder never reads past a record.
 */

const twoToThe32 = 0x1_0000_0000;

/** Thrown by ByteReader when bytes do not decode; callers wrap it with file and offset. */
export class DecodeError extends Error {
  override readonly name = "DecodeError";
}

export class ByteWriter {
  #buffer: Buffer;
  #length = 0;

  constructor(initialBytes = 256) {
    this.#buffer = Buffer.allocUnsafe(initialBytes);
  }

  get length(): number {
    return this.#length;
  }

  /** Bytes the writer can hold before it must grow. */
  capacity(): number {
    return this.#buffer.length;
  }

  #reserve(bytes: number): void {
    const needed = this.#length + bytes;
    if (needed <= this.#buffer.length) return;
    const grown = Buffer.allocUnsafe(Math.max(needed, this.#buffer.length * 2));
    this.#buffer.copy(grown, 0, 0, this.#length);
    this.#buffer = grown;
  }

  u8(value: number): void {
    this.#reserve(1);
    this.#buffer[this.#length] = value;
    this.#length += 1;
  }

  u32(value: number): void {
    this.#reserve(4);
    this.#buffer.writeUInt32LE(value >>> 0, this.#length);
    this.#length += 4;
  }

  u64(value: number): void {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new RangeError(`cannot encode ${value} as u64: not a non-negative safe integer`);
    }
    this.u32(value % twoToThe32);
    this.u32(Math.floor(value / twoToThe32));
  }

  bytes(value: Uint8Array): void {
    this.u32(value.length);
    this.raw(value);
  }

  raw(value: Uint8Array): void {
    this.#reserve(value.length);
    this.#buffer.set(value, this.#length);
    this.#length += value.length;
  }

  /** Overwrites a u32 written earlier (record headers are filled in after the payload). */
  patchU32(offset: number, value: number): void {
    this.#buffer.writeUInt32LE(value >>> 0, offset);
  }

  /** A view of the written bytes; valid until the next write. */
  view(): Buffer {
    return this.#buffer.subarray(0, this.#length);
  }

  reset(): void {
    this.#length = 0;
  }

  /** Drops what was written after the first `length` bytes (undoes a refused write). */
  truncate(length: number): void {
    if (length < 0 || length > this.#length) throw new RangeError(`cannot truncate ${this.#length} written bytes to ${length}`);
    this.#length = length;
  }
}

export class ByteReader {
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  #offset: number;
  readonly #end: number;

  constructor(bytes: Uint8Array, start = 0, end = bytes.length) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.#offset = start;
    this.#end = end;
  }

  get remaining(): number {
    return this.#end - this.#offset;
  }

  #need(bytes: number): void {
    if (this.#end - this.#offset < bytes) {
      throw new DecodeError(`needs ${bytes} more bytes at offset ${this.#offset}, has ${this.#end - this.#offset}`);
    }
  }

  u8(): number {
    this.#need(1);
    const value = this.#view.getUint8(this.#offset);
    this.#offset += 1;
    return value;
  }

  u32(): number {
    this.#need(4);
    const value = this.#view.getUint32(this.#offset, true);
    this.#offset += 4;
    return value;
  }

  u64(): number {
    const low = this.u32();
    const high = this.u32();
    const value = high * twoToThe32 + low;
    if (!Number.isSafeInteger(value)) throw new DecodeError(`u64 ${high}:${low} exceeds 2^53`);
    return value;
  }

  /** A view into the input, not a copy: a caller that keeps it past the input copies it. */
  bytes(): Uint8Array {
    const length = this.u32();
    this.#need(length);
    const value = this.#bytes.subarray(this.#offset, this.#offset + length);
    this.#offset += length;
    return value;
  }

  end(): void {
    if (this.#offset !== this.#end) throw new DecodeError(`${this.#end - this.#offset} trailing bytes`);
  }
}

const entryTypeCodes: Record<EntryType, number> = { normal: 0, "conf-change": 1 };

export function encodeEntry(writer: ByteWriter, entry: Entry): void {
  writer.u64(entry.term);
  writer.u64(entry.index);
  writer.u8(entryTypeCodes[entry.type]);
  writer.bytes(entry.data);
}

export function decodeEntry(reader: ByteReader): Entry {
  const term = reader.u64();
  const index = reader.u64();
  const code = reader.u8();
  // A copy, so that an entry kept in memory does not pin the whole segment it was read from
  // (64 MB with its preallocated tail); Buffer.from packs small entries into shared slabs.
  const data = Buffer.from(reader.bytes());
  if (code === 0) return { term, index, type: "normal", data };
  if (code === 1) return { term, index, type: "conf-change", data };
  throw new DecodeError(`unknown entry type code ${code}`);
}

export function encodeHardState(writer: ByteWriter, state: HardState): void {
  writer.u64(state.term);
  writer.u64(state.vote);
  writer.u64(state.commit);
}

export function decodeHardState(reader: ByteReader): HardState {
  return { term: reader.u64(), vote: reader.u64(), commit: reader.u64() };
}

function encodeIds(writer: ByteWriter, ids: readonly NodeId[]): void {
  writer.u32(ids.length);
  for (const id of ids) writer.u64(id);
}

/** Membership lists are tiny; a count above this is corruption, not a big cluster. */
const membersCountMax = 1024;

function decodeIds(reader: ByteReader): NodeId[] {
  const count = reader.u32();
  if (count > membersCountMax) throw new DecodeError(`member count ${count} exceeds ${membersCountMax}`);
  const ids: NodeId[] = [];
  for (let index = 0; index < count; index += 1) ids.push(reader.u64());
  return ids;
}

/** Removed ids travel with the membership: a snapshot must keep them refused forever. */
export function encodeConfState(writer: ByteWriter, state: ConfState): void {
  encodeIds(writer, state.voters);
  encodeIds(writer, state.learners);
  encodeIds(writer, state.removed ?? []);
}

export function decodeConfState(reader: ByteReader): ConfState {
  const voters = decodeIds(reader);
  const learners = decodeIds(reader);
  const removed = decodeIds(reader);
  return removed.length === 0 ? { voters, learners } : { voters, learners, removed };
}

export function encodeSnapshotMetadata(writer: ByteWriter, metadata: SnapshotMetadata): void {
  writer.u64(metadata.index);
  writer.u64(metadata.term);
  encodeConfState(writer, metadata.confState);
}

export function decodeSnapshotMetadata(reader: ByteReader): SnapshotMetadata {
  const index = reader.u64();
  const term = reader.u64();
  return { index, term, confState: decodeConfState(reader) };
}
