import assert from "node:assert/strict";
import { writeSync } from "node:fs";
import { open, readdir, readFile, rename, rm } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { join } from "node:path";

import { FailedPreconditionError, InternalError, errorMessage } from "../../common/errors.js";
import { syncDirectory } from "../../common/files.js";
import type { Logger } from "../../common/logger.js";
import type { Entry, HardState } from "../core/types.js";
import { emptyHardState } from "../core/types.js";
import {
  ByteReader,
  ByteWriter,
  DecodeError,
  decodeEntry,
  decodeHardState,
  encodeEntry,
  encodeHardState,
} from "./codec.js";
import { crc32c } from "./crc32c.js";

/**
 * The write-ahead log: numbered segment files of checksummed batches of records.
 *
 * Batch (format 2), little endian: a 24-byte header [magic u32][records' length u32][the
 * batch's offset in its segment u64][crc32c of the records u32][crc32c of the header's
 * first 20 bytes u32], then the records, each [payload length u32][type u8][payload]. One
 * sync() writes one batch. The header's own checksum covers the length, so a damaged
 * length is found rather than read as a shorter log, and the recorded offset tells a real
 * header from bytes inside a record that happen to look like one.
 *
 * Segment file name: `<sequence 16 hex>-<first index 16 hex>.wal`, where first index is the
 * index the log expected next when the segment was created. Each segment starts with a
 * batch of its header record, the hard state and the snapshot marker, so a segment is
 * self-contained once older segments are released. Payloads: entry = term, index, type,
 * data; hard state = term, vote, commit; snapshot marker = index, term, resets-log flag;
 * segment header = format version, sequence.
 *
 * Durability: append() and setHardState() only buffer; sync() writes the batch with one
 * write and one fdatasync (group commit). A new segment is written to a temporary name,
 * fsynced, renamed into place and the directory fsynced, so a crash never leaves a
 * half-created segment. Segments are zero-filled ahead of the batches (preallocation), and
 * all-zero bytes where a batch header would start mark the end of a segment. An fsync
 * failure is fatal (WalSyncError): after it the page cache may have dropped dirty pages,
 * so retrying could report success for data that is gone.
 *
 * Recovery: a batch of the last segment that fails its checks, with no intact batch header
 * anywhere after it, is a torn write that was never acknowledged, whichever of its pages
 * the disk kept (a disk may persist a later page of a write and lose an earlier one): the
 * segment is truncated where it starts. Any other damage refuses to start with
 * WalCorruptionError naming the file and offset. The damaged last batch itself cannot be
 * told from a torn one; it is dropped, as etcd drops a torn last entry.
 *
 * Format 1 segments (one checksum per record, [length][crc32c of type+payload][type]
 * [payload], no batches) are still read, with their own torn-tail rule; when the last
 * segment is one, open() starts a format 2 segment after it, so they are never written.
 */

export const segmentBytesTargetDefault = 64 * 1024 * 1024;
/** A record above this size is refused on write and treated as corruption on read. */
export const recordPayloadBytesMax = 64 * 1024 * 1024;
/** Bytes of a record's header in format 1 segments: length, checksum, type. */
const checksummedRecordHeaderBytes = 9;
/** Bytes of a record's header in a batch: length, type (the batch's checksum covers it). */
const batchedRecordHeaderBytes = 5;
const batchHeaderBytes = 24;
const batchHeaderChecksummedBytes = 20;
/** High bits set in each byte, so that neither zeros nor text start a batch header. */
const batchMagic = 0xe1c35b9a;
const batchMagicBytes = Buffer.alloc(4);
batchMagicBytes.writeUInt32LE(batchMagic);
const batchHeaderPlaceholder = Buffer.alloc(batchHeaderBytes);
/**
 * Segments are zero-filled this far ahead of the last record, so that most fdatasyncs write
 * data blocks only: appending past the end of a file also commits its new size through the
 * filesystem journal, which costs as much as the data write again.
 */
export const preallocateChunkBytes = 1024 * 1024;
const zeroChunk = Buffer.alloc(preallocateChunkBytes);
const pendingBytesInitial = 64 * 1024;
/**
 * A record buffer that grew beyond this for one large batch is dropped after it was written
 * rather than kept for reuse, so that one burst does not pin its memory for good.
 */
export const pendingBufferBytesKeptMax = 4 * 1024 * 1024;
/** The format of the segments written; format 1 segments are still read (see above). */
const walFormatVersion = 2;
const walFormatVersionChecksummedRecords = 1;

const recordTypes = { segmentHeader: 1, entry: 2, hardState: 3, snapshotMarker: 4 } as const;

export interface SnapshotMarker {
  readonly index: number;
  readonly term: number;
}

/** What recovery found: the log after `afterIndex`, contiguous, with conflicts resolved. */
export interface WalRecoveredState {
  readonly hardState: HardState;
  readonly entries: Entry[];
  /** The newest snapshot the WAL recorded, or null; callers check it against their snapshot file. */
  readonly snapshotMarker: SnapshotMarker | null;
}

/** The log is damaged in a way that repair could lose acknowledged data: refuse to start. */
export class WalCorruptionError extends FailedPreconditionError {
  readonly file: string;
  readonly offset: number;

  constructor(file: string, offset: number, problem: string, options?: { cause?: unknown }) {
    super(
      `write-ahead log ${file} is corrupt at byte offset ${offset}: ${problem}; ` +
        "restore this manager's data directory from a backup or remove it and rejoin the cluster",
      options,
    );
    this.file = file;
    this.offset = offset;
  }
}

/** Writing or fsyncing the log failed: the process must stop, its durability is unknown. */
export class WalSyncError extends InternalError {}

export interface WalOptions {
  readonly dir: string;
  readonly logger: Logger;
  /** Entries at or below this index are covered by the snapshot the caller loaded. */
  readonly afterIndex: number;
  readonly segmentBytesTarget?: number;
  /**
   * Opens the segment files the log writes to; fs.promises.open by default. A seam for
   * fault-injection tests (a failing fsync), not for production use.
   */
  readonly openSegment?: SegmentOpener;
}

export type SegmentOpener = (path: string, flags: "r+" | "w+") => Promise<FileHandle>;

const defaultSegmentOpener: SegmentOpener = (path, flags) => open(path, flags);

interface SegmentName {
  readonly sequence: number;
  readonly firstIndex: number;
  readonly file: string;
}

const segmentNamePattern = /^([0-9a-f]{16})-([0-9a-f]{16})\.wal$/;

function segmentFileName(sequence: number, firstIndex: number): string {
  return `${sequence.toString(16).padStart(16, "0")}-${firstIndex.toString(16).padStart(16, "0")}.wal`;
}

function parseSegmentName(file: string): SegmentName | null {
  const match = segmentNamePattern.exec(file);
  if (match === null) return null;
  const sequence = Number.parseInt(match[1] ?? "", 16);
  const firstIndex = Number.parseInt(match[2] ?? "", 16);
  if (!Number.isSafeInteger(sequence) || !Number.isSafeInteger(firstIndex)) return null;
  return { sequence, firstIndex, file };
}

/** Empties `writer` and leaves room for the header of the batch it will hold (see sealBatch). */
function beginBatch(writer: ByteWriter): void {
  writer.reset();
  writer.raw(batchHeaderPlaceholder);
}

function batchIsEmpty(writer: ByteWriter): boolean {
  return writer.length === batchHeaderBytes;
}

function newBatchWriter(): ByteWriter {
  const writer = new ByteWriter(pendingBytesInitial);
  beginBatch(writer);
  return writer;
}

/** Appends a record to the batch being built; on a refusal the caller truncates what it wrote. */
function writeRecord(writer: ByteWriter, type: number, encode: (writer: ByteWriter) => void): void {
  const start = writer.length;
  writer.u32(0);
  writer.u8(type);
  encode(writer);
  const payloadBytes = writer.length - start - batchedRecordHeaderBytes;
  if (payloadBytes > recordPayloadBytesMax) {
    throw new FailedPreconditionError(
      `WAL record of ${payloadBytes} bytes exceeds recordPayloadBytesMax ${recordPayloadBytesMax}: propose smaller entries`,
    );
  }
  writer.patchU32(start, payloadBytes);
}

/** Fills in the header of the batch in `writer`, to be written at `offset` of its segment. */
function sealBatch(writer: ByteWriter, offset: number): Buffer {
  const bytes = writer.view();
  writer.patchU32(0, batchMagic);
  writer.patchU32(4, bytes.length - batchHeaderBytes);
  writer.patchU32(8, offset % 0x1_0000_0000);
  writer.patchU32(12, Math.floor(offset / 0x1_0000_0000));
  writer.patchU32(16, crc32c(bytes, 0, batchHeaderBytes, bytes.length));
  writer.patchU32(20, crc32c(bytes, 0, 0, batchHeaderChecksummedBytes));
  return bytes;
}

/** Where the batch whose header is intact at `offset` ends, or what is wrong with that header. */
function checkBatchHeader(bytes: Buffer, offset: number): { end: number } | { problem: string } {
  if (bytes.length - offset < batchHeaderBytes) return { problem: "incomplete batch header" };
  if (bytes.readUInt32LE(offset) !== batchMagic) return { problem: "no batch header where one should start" };
  if (crc32c(bytes, 0, offset, offset + batchHeaderChecksummedBytes) !== bytes.readUInt32LE(offset + batchHeaderChecksummedBytes)) {
    return { problem: "batch header checksum mismatch" };
  }
  const recordedOffset = bytes.readUInt32LE(offset + 12) * 0x1_0000_0000 + bytes.readUInt32LE(offset + 8);
  if (recordedOffset !== offset) return { problem: `the batch header found here was written at offset ${recordedOffset}` };
  return { end: offset + batchHeaderBytes + bytes.readUInt32LE(offset + 4) };
}

/** Where the intact batch at `offset` ends, or what is wrong with the bytes there. */
function checkBatch(bytes: Buffer, offset: number): { end: number } | { problem: string } {
  const header = checkBatchHeader(bytes, offset);
  if ("problem" in header) return header;
  if (header.end > bytes.length) return { problem: "batch runs past the end of the segment" };
  if (crc32c(bytes, 0, offset + batchHeaderBytes, header.end) !== bytes.readUInt32LE(offset + 16)) {
    return { problem: "batch checksum mismatch" };
  }
  return header;
}

/**
 * The offset of the first intact batch header at or after `from`, or null. A batch's
 * header is written only after the batch before it was synced, so one found after a
 * damaged batch proves that batch was synced, even if its own records were torn.
 */
function findBatchHeader(bytes: Buffer, from: number): number | null {
  for (let at = bytes.indexOf(batchMagicBytes, from); at !== -1; at = bytes.indexOf(batchMagicBytes, at + 1)) {
    if ("end" in checkBatchHeader(bytes, at)) return at;
  }
  return null;
}

async function listSegments(dir: string, logger: Logger): Promise<SegmentName[]> {
  const segments: SegmentName[] = [];
  for (const file of await readdir(dir)) {
    if (file.endsWith(".wal.tmp")) {
      // A segment whose creation crashed before its rename: it never held acknowledged data.
      logger.warn({ file }, "removing unfinished WAL segment");
      await rm(join(dir, file), { force: true });
      continue;
    }
    const name = parseSegmentName(file);
    if (name !== null) segments.push(name);
  }
  segments.sort((a, b) => a.sequence - b.sequence);
  for (let index = 1; index < segments.length; index += 1) {
    const previous = segments[index - 1];
    const current = segments[index];
    if (previous !== undefined && current !== undefined && current.sequence !== previous.sequence + 1) {
      throw new WalCorruptionError(current.file, 0, `segment ${previous.sequence + 1} is missing before it`);
    }
  }
  return segments;
}

/** Collects replayed records into the recovered state, honouring conflict truncation. */
class WalReplay {
  hardState: HardState = emptyHardState;
  entries: Entry[] = [];
  snapshotMarker: SnapshotMarker | null = null;
  readonly #afterIndex: number;

  constructor(afterIndex: number) {
    this.#afterIndex = afterIndex;
  }

  lastIndex(): number {
    return this.entries.at(-1)?.index ?? this.#afterIndex;
  }

  /** A snapshot from the leader replaced the log: the entries before it are void. */
  resetTo(index: number, file: string, offset: number): void {
    if (index > this.#afterIndex) {
      throw new WalCorruptionError(
        file,
        offset,
        `a snapshot at index ${index} replaced the log, but the newest intact snapshot file is at ${this.#afterIndex}`,
      );
    }
    this.entries = [];
  }

  addEntry(entry: Entry, file: string, offset: number): void {
    // Covered by the snapshot: the entry is committed and already in the snapshot's state.
    if (entry.index <= this.#afterIndex) return;
    const first = this.entries[0]?.index ?? this.#afterIndex + 1;
    if (entry.index > this.lastIndex() + 1) {
      throw new WalCorruptionError(
        file,
        offset,
        `entry ${entry.index} follows entry ${this.lastIndex()}: entries in between are missing`,
      );
    }
    // A later append at a lower index replaced the tail of the log (raft conflict truncation).
    if (entry.index <= this.lastIndex()) this.entries.length = entry.index - first;
    this.entries.push(entry);
  }
}

interface SegmentReadResult {
  /** Bytes of valid records; the segment is truncated here when it had a torn tail. */
  readonly validBytes: number;
  readonly tornBytes: number;
  readonly formatVersion: number;
}

/** One record found in a segment, with where it is for error messages. */
interface SegmentRecord {
  readonly type: number | undefined;
  readonly offset: number;
  readonly payloadStart: number;
  readonly end: number;
  /** The first record of its segment, which must be the segment header. */
  readonly first: boolean;
}

function restIsZero(bytes: Uint8Array, start: number): boolean {
  for (let offset = start; offset < bytes.length; offset += 1) if (bytes[offset] !== 0) return false;
  return true;
}

/**
 * Replays one segment into `replay`. A segment created by this version starts with a batch;
 * one that starts with a format 1 segment header record is read by the format 1 rules. A
 * segment file is renamed into place only once its start is durable, so a start that is
 * neither is damage, never a torn write.
 */
function readSegment(segment: SegmentName, bytes: Buffer, isLast: boolean, replay: WalReplay): SegmentReadResult {
  if (bytes.length >= 4 && bytes.readUInt32LE(0) === batchMagic) return readBatchedSegment(segment, bytes, isLast, replay);
  const checksummedHeaderPayloadBytes = 12;
  if (
    bytes.length >= checksummedRecordHeaderBytes &&
    bytes.readUInt32LE(0) === checksummedHeaderPayloadBytes &&
    bytes[8] === recordTypes.segmentHeader
  ) {
    return readChecksummedSegment(segment, bytes, isLast, replay);
  }
  throw new WalCorruptionError(segment.file, 0, "the segment starts with no segment header");
}

function readBatchedSegment(segment: SegmentName, bytes: Buffer, isLast: boolean, replay: WalReplay): SegmentReadResult {
  let offset = 0;
  while (offset < bytes.length) {
    // Preallocated zeros: no batch header starts with a zero byte (the magic number).
    if (restIsZero(bytes, offset)) break;
    const batch = checkBatch(bytes, offset);
    if ("problem" in batch) {
      // A later batch was written only after this one's fsync returned: this one was synced,
      // and is damaged. The first batch went in before the segment's rename: never torn.
      if (!isLast || offset === 0) throw new WalCorruptionError(segment.file, offset, batch.problem);
      const later = findBatchHeader(bytes, offset + 1);
      if (later !== null) {
        throw new WalCorruptionError(segment.file, offset, `${batch.problem}, and the batch at offset ${later} was synced after it`);
      }
      return { validBytes: offset, tornBytes: bytes.length - offset, formatVersion: walFormatVersion };
    }
    readBatchRecords(segment, bytes, offset, batch.end, replay);
    offset = batch.end;
  }
  return { validBytes: offset, tornBytes: 0, formatVersion: walFormatVersion };
}

function readBatchRecords(segment: SegmentName, bytes: Buffer, batchStart: number, batchEnd: number, replay: WalReplay): void {
  let offset = batchStart + batchHeaderBytes;
  while (offset < batchEnd) {
    // The batch's checksum passed: records that do not fit it were written that way.
    if (batchEnd - offset < batchedRecordHeaderBytes) {
      throw new WalCorruptionError(segment.file, offset, "an intact batch ends inside a record header");
    }
    const end = offset + batchedRecordHeaderBytes + bytes.readUInt32LE(offset);
    if (end > batchEnd) throw new WalCorruptionError(segment.file, offset, "a record runs past the end of its intact batch");
    const first = batchStart === 0 && offset === batchHeaderBytes;
    readSegmentRecord(segment, bytes, { type: bytes[offset + 4], offset, payloadStart: offset + batchedRecordHeaderBytes, end, first }, replay);
    offset = end;
  }
}

function readChecksummedSegment(segment: SegmentName, bytes: Buffer, isLast: boolean, replay: WalReplay): SegmentReadResult {
  let offset = 0;
  const formatVersion = walFormatVersionChecksummedRecords;
  const torn = (problem: string): SegmentReadResult => {
    if (!isLast) throw new WalCorruptionError(segment.file, offset, problem);
    return { validBytes: offset, tornBytes: bytes.length - offset, formatVersion };
  };
  while (offset < bytes.length) {
    // Preallocated zeros: no record has an all-zero header (record types start at 1).
    if (restIsZero(bytes, offset)) return { validBytes: offset, tornBytes: 0, formatVersion };
    if (bytes.length - offset < checksummedRecordHeaderBytes) return torn("incomplete record header");
    const length = bytes.readUInt32LE(offset);
    const end = offset + checksummedRecordHeaderBytes + length;
    if (length > recordPayloadBytesMax || end > bytes.length) {
      if (isLast && end > bytes.length && length <= recordPayloadBytesMax) return torn("incomplete record");
      if (isLast && restIsZero(bytes, offset)) return torn("zero-filled tail");
      throw new WalCorruptionError(segment.file, offset, `record length ${length} runs past the end of the segment`);
    }
    if (crc32c(bytes, 0, offset + 8, end) !== bytes.readUInt32LE(offset + 4)) {
      // Only the last record of the last segment may be torn; a bad checksum with data after
      // it is damage to synced records.
      if (isLast && (end === bytes.length || restIsZero(bytes, end))) return torn("checksum mismatch in last record");
      throw new WalCorruptionError(segment.file, offset, "record checksum mismatch");
    }
    const record = { type: bytes[offset + 8], offset, payloadStart: offset + checksummedRecordHeaderBytes, end, first: offset === 0 };
    readSegmentRecord(segment, bytes, record, replay, formatVersion);
    offset = end;
  }
  return { validBytes: offset, tornBytes: 0, formatVersion };
}

function readSegmentRecord(
  segment: SegmentName,
  bytes: Buffer,
  record: SegmentRecord,
  replay: WalReplay,
  formatVersion = walFormatVersion,
): void {
  const { type, offset } = record;
  const reader = new ByteReader(bytes, record.payloadStart, record.end);
  try {
    if (record.first && type !== recordTypes.segmentHeader) {
      throw new DecodeError("the segment does not start with a header record");
    }
    switch (type) {
      case recordTypes.segmentHeader: {
        const version = reader.u32();
        const sequence = reader.u64();
        if (!record.first) throw new DecodeError("segment header record in the middle of a segment");
        if (version !== formatVersion) throw new DecodeError(`WAL format version ${version} in a format ${formatVersion} segment`);
        if (sequence !== segment.sequence) throw new DecodeError(`header says sequence ${sequence}`);
        break;
      }
      case recordTypes.entry:
        replay.addEntry(decodeEntry(reader), segment.file, offset);
        break;
      case recordTypes.hardState:
        replay.hardState = decodeHardState(reader);
        break;
      case recordTypes.snapshotMarker: {
        const marker = { index: reader.u64(), term: reader.u64() };
        const resetsLog = reader.u8() === 1;
        replay.snapshotMarker = marker;
        if (resetsLog) replay.resetTo(marker.index, segment.file, offset);
        break;
      }
      default:
        throw new DecodeError(`unknown record type ${String(type)}`);
    }
    reader.end();
  } catch (error) {
    if (error instanceof WalCorruptionError) throw error;
    if (!(error instanceof DecodeError)) throw error;
    throw new WalCorruptionError(segment.file, offset, error.message, { cause: error });
  }
}

export class WriteAheadLog {
  readonly #dir: string;
  readonly #logger: Logger;
  readonly #segmentBytesTarget: number;
  readonly #openSegment: SegmentOpener;
  #segments: SegmentName[];
  #handle: FileHandle;
  /** Bytes of records in the current segment: where the next write goes. */
  #segmentBytes: number;
  /** The current segment's length on disk (records, then preallocated zeros). */
  #fileBytes: number;
  #pending = newBatchWriter();
  /**
   * The other record buffer. sync() hands the filled one to the kernel and appends go on
   * into this one meanwhile; then they swap. A fresh buffer per sync cost a 64 KiB
   * allocation outside V8's heap per fsync, which at one proposal per fsync pushed V8
   * into frequent full garbage collections (and their pauses into commit latency).
   */
  #spare = newBatchWriter();
  #hardState: HardState;
  #snapshotMarker: SnapshotMarker | null;
  #lastIndex: number;
  #syncing = false;
  #syncs = 0;
  #failed: Error | null = null;
  #closed = false;

  private constructor(options: {
    dir: string;
    logger: Logger;
    segmentBytesTarget: number;
    openSegment: SegmentOpener;
    segments: SegmentName[];
    handle: FileHandle;
    segmentBytes: number;
    fileBytes: number;
    replay: WalReplay;
  }) {
    this.#dir = options.dir;
    this.#logger = options.logger;
    this.#segmentBytesTarget = options.segmentBytesTarget;
    this.#openSegment = options.openSegment;
    this.#segments = options.segments;
    this.#handle = options.handle;
    this.#segmentBytes = options.segmentBytes;
    this.#fileBytes = options.fileBytes;
    this.#hardState = options.replay.hardState;
    this.#snapshotMarker = options.replay.snapshotMarker;
    this.#lastIndex = options.replay.lastIndex();
  }

  /**
   * Opens the log in `dir` (which must exist), replaying every segment; creates the first
   * segment when there is none. Repairs a torn tail of the last segment by truncating it.
   * Throws WalCorruptionError (naming file and offset) for any other damage.
   */
  static async open(options: WalOptions): Promise<{ wal: WriteAheadLog; state: WalRecoveredState }> {
    const logger = options.logger.child({ component: "raft-wal" });
    const segmentBytesTarget = options.segmentBytesTarget ?? segmentBytesTargetDefault;
    const openSegment = options.openSegment ?? defaultSegmentOpener;
    const segments = await listSegments(options.dir, logger);
    const replay = new WalReplay(options.afterIndex);
    let lastSegmentBytes = 0;
    let lastSegmentFileBytes = 0;
    let lastSegmentFormat = walFormatVersion;
    for (const [position, segment] of segments.entries()) {
      const path = join(options.dir, segment.file);
      const bytes = await readFile(path);
      const isLast = position === segments.length - 1;
      const result = readSegment(segment, bytes, isLast, replay);
      if (result.tornBytes > 0) {
        logger.warn(
          { file: segment.file, offset: result.validBytes, bytes: result.tornBytes },
          "truncating torn tail of the write-ahead log (a write that was never acknowledged)",
        );
        const handle = await open(path, "r+");
        try {
          await handle.truncate(result.validBytes);
          await handle.sync();
        } finally {
          await handle.close();
        }
      }
      lastSegmentBytes = result.validBytes;
      lastSegmentFileBytes = result.tornBytes > 0 ? result.validBytes : bytes.length;
      lastSegmentFormat = result.formatVersion;
    }
    const last = segments.at(-1);
    let handle: FileHandle;
    if (last === undefined || lastSegmentBytes === 0) {
      // No segment, or a format 1 one whose header record was torn: a fresh one in its place.
      const sequence = last?.sequence ?? 0;
      if (last !== undefined) await rm(join(options.dir, last.file));
      const created = await WriteAheadLog.#createSegment(options.dir, sequence, replay.lastIndex() + 1, replay, openSegment);
      segments.splice(segments.length - (last === undefined ? 0 : 1), 1, created.name);
      handle = created.handle;
      lastSegmentBytes = created.bytes;
      lastSegmentFileBytes = created.bytes;
    } else if (lastSegmentFormat !== walFormatVersion) {
      // A log written by an earlier version: its segments stay as they are, read by their
      // own rules, and batches go into a segment of this version after them.
      const created = await WriteAheadLog.#createSegment(options.dir, last.sequence + 1, replay.lastIndex() + 1, replay, openSegment);
      segments.push(created.name);
      handle = created.handle;
      lastSegmentBytes = created.bytes;
      lastSegmentFileBytes = created.bytes;
    } else {
      handle = await openSegment(join(options.dir, last.file), "r+");
    }
    const wal = new WriteAheadLog({
      dir: options.dir,
      logger,
      segmentBytesTarget,
      openSegment,
      segments,
      handle,
      segmentBytes: lastSegmentBytes,
      fileBytes: lastSegmentFileBytes,
      replay,
    });
    const state = { hardState: replay.hardState, entries: replay.entries, snapshotMarker: replay.snapshotMarker };
    return { wal, state };
  }

  static async #createSegment(
    dir: string,
    sequence: number,
    firstIndex: number,
    state: { hardState: HardState; snapshotMarker: SnapshotMarker | null },
    openSegment: SegmentOpener,
  ): Promise<{ name: SegmentName; handle: FileHandle; bytes: number }> {
    const file = segmentFileName(sequence, firstIndex);
    const temporary = join(dir, `${file}.tmp`);
    const writer = new ByteWriter();
    beginBatch(writer);
    writeRecord(writer, recordTypes.segmentHeader, (w) => {
      w.u32(walFormatVersion);
      w.u64(sequence);
    });
    writeRecord(writer, recordTypes.hardState, (w) => encodeHardState(w, state.hardState));
    const marker = state.snapshotMarker;
    if (marker !== null) {
      // Only a record of the snapshot: the entries that follow in this segment are valid.
      writeRecord(writer, recordTypes.snapshotMarker, (w) => {
        w.u64(marker.index);
        w.u64(marker.term);
        w.u8(0);
      });
    }
    const handle = await openSegment(temporary, "w+");
    try {
      const bytes = sealBatch(writer, 0);
      await handle.write(bytes, 0, bytes.length, 0);
      await handle.sync();
      await rename(temporary, join(dir, file));
      await syncDirectory(dir);
    } catch (error) {
      await handle.close();
      throw error;
    }
    return { name: { sequence, firstIndex, file }, handle, bytes: writer.length };
  }

  #checkUsable(): void {
    if (this.#failed !== null) {
      throw new WalSyncError("the write-ahead log failed earlier and cannot be used", { cause: this.#failed });
    }
    assert.equal(this.#closed, false, "write-ahead log used after close");
  }

  /** Buffers entries for the next sync(). Entries must be contiguous and start at or below lastIndex + 1. */
  append(entries: readonly Entry[]): void {
    this.#checkUsable();
    // Checked for the whole batch first, so that a refused append buffers nothing.
    let last = this.#lastIndex;
    for (const entry of entries) {
      // Not assert.ok(): its template message would be built for every entry.
      if (entry.index > last + 1) assert.fail(`WAL append of entry ${entry.index} leaves a gap after ${last}`);
      last = entry.index;
    }
    const start = this.#pending.length;
    try {
      for (const entry of entries) writeRecord(this.#pending, recordTypes.entry, (w) => encodeEntry(w, entry));
    } catch (error) {
      this.#pending.truncate(start);
      throw error;
    }
    this.#lastIndex = last;
  }

  /** Buffers the hard state for the next sync(). */
  setHardState(state: HardState): void {
    this.#checkUsable();
    writeRecord(this.#pending, recordTypes.hardState, (w) => encodeHardState(w, state));
    this.#hardState = state;
  }

  /**
   * Buffers a record that a snapshot at marker.index exists. Write the snapshot file (and
   * fsync it) first: replay after a crash must never see a marker without its file. With
   * `resetsLog` (a snapshot received from the leader) every entry before the marker is
   * void, as raft discards the whole log then; the next append starts at marker.index + 1.
   * Without it (a local snapshot for compaction) the log is unchanged.
   */
  markSnapshot(marker: SnapshotMarker, options: { resetsLog: boolean }): void {
    this.#checkUsable();
    writeRecord(this.#pending, recordTypes.snapshotMarker, (w) => {
      w.u64(marker.index);
      w.u64(marker.term);
      w.u8(options.resetsLog ? 1 : 0);
    });
    this.#snapshotMarker = marker;
    if (options.resetsLog) this.#lastIndex = marker.index;
  }

  /** The index of the last entry appended (or of the snapshot, when it is newer). */
  lastIndex(): number {
    return this.#lastIndex;
  }

  /**
   * Writes everything buffered and fdatasyncs it: one write and one fsync however many
   * records. Starts a new segment afterwards when the current one reached its target size.
   * Throws WalSyncError on any failure; the log is unusable afterwards.
   */
  async sync(): Promise<void> {
    this.#checkUsable();
    assert.equal(this.#syncing, false, "WAL sync() called while another sync() is running");
    if (batchIsEmpty(this.#pending)) return;
    this.#syncing = true;
    // What this batch makes durable. Records buffered while its fsync runs go into the next
    // batch, so a segment started after it must not claim them (see #rollSegment).
    const durable = { hardState: this.#hardState, snapshotMarker: this.#snapshotMarker, lastIndex: this.#lastIndex };
    const filled = this.#pending;
    this.#pending = this.#spare;
    const bytes = sealBatch(filled, this.#segmentBytes);
    try {
      // The write only copies into the page cache, which is quicker done here than with a
      // round trip through the libuv thread pool; the fsync is what waits for the disk.
      this.#preallocate(this.#segmentBytes + bytes.length);
      let written = 0;
      while (written < bytes.length) {
        written += writeSync(this.#handle.fd, bytes, written, bytes.length - written, this.#segmentBytes + written);
      }
      // The kernel has its own copy now: the buffer is free for the next batch.
      beginBatch(filled);
      this.#spare = filled.capacity() > pendingBufferBytesKeptMax ? newBatchWriter() : filled;
      await this.#handle.datasync();
      this.#syncs += 1;
      this.#segmentBytes += bytes.length;
      if (this.#segmentBytes >= this.#segmentBytesTarget) await this.#rollSegment(durable);
    } catch (error) {
      this.#failed = error instanceof Error ? error : new Error(errorMessage(error));
      throw new WalSyncError(`write-ahead log write or fsync failed in ${this.#dir}: ${errorMessage(error)}`, {
        cause: error,
      });
    } finally {
      this.#syncing = false;
    }
  }

  /** Zero-fills the segment up to a chunk beyond `needed` bytes, if it is not that long yet. */
  #preallocate(needed: number): void {
    if (needed <= this.#fileBytes) return;
    const ahead = Math.ceil((needed + preallocateChunkBytes) / preallocateChunkBytes) * preallocateChunkBytes;
    // Never beyond the segment's target size: the segment rolls over there anyway.
    const target = Math.max(needed, Math.min(ahead, this.#segmentBytesTarget));
    while (this.#fileBytes < target) {
      const length = Math.min(zeroChunk.length, target - this.#fileBytes);
      this.#fileBytes += writeSync(this.#handle.fd, zeroChunk, 0, length, this.#fileBytes);
    }
  }

  /** Bytes of records in the current segment (diagnostics, tests). */
  writtenBytes(): number {
    return this.#segmentBytes;
  }

  /**
   * Starts the next segment with the state `durable` on disk. Not the state buffered since:
   * the new header is fsynced at once, and a commit index in it ahead of entries still in
   * the buffer would survive a crash that loses them, leaving a log that cannot start.
   */
  async #rollSegment(durable: { hardState: HardState; snapshotMarker: SnapshotMarker | null; lastIndex: number }): Promise<void> {
    const last = this.#segments.at(-1);
    assert.ok(last !== undefined, "the WAL always has a current segment");
    const created = await WriteAheadLog.#createSegment(this.#dir, last.sequence + 1, durable.lastIndex + 1, durable, this.#openSegment);
    await this.#handle.close();
    this.#handle = created.handle;
    this.#segmentBytes = created.bytes;
    this.#fileBytes = created.bytes;
    this.#segments.push(created.name);
    this.#logger.debug({ file: created.name.file }, "started WAL segment");
  }

  /**
   * Deletes segments all of whose entries are at or below `index` (a durable snapshot's
   * index). The current segment is never deleted. Returns how many were removed.
   */
  async releaseBefore(index: number): Promise<number> {
    this.#checkUsable();
    let released = 0;
    while (this.#segments.length > 1) {
      const [oldest, next] = this.#segments;
      if (oldest === undefined || next === undefined || next.firstIndex - 1 > index) break;
      await rm(join(this.#dir, oldest.file));
      this.#segments.shift();
      released += 1;
    }
    if (released > 0) await syncDirectory(this.#dir);
    return released;
  }

  /** How many fsyncs sync() made, for diagnostics and group-commit tests. */
  syncCount(): number {
    return this.#syncs;
  }

  /** The segment files in order, for tests and diagnostics. */
  segmentFiles(): string[] {
    return this.#segments.map((segment) => segment.file);
  }

  /** Closes the current segment. Buffered records that were not synced are dropped. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#handle.close();
  }
}
