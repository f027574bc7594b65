import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

import { pino } from "pino";

import type { Entry, HardState } from "../../../src/raft/core/types.js";
import { ByteWriter, encodeEntry, encodeHardState } from "../../../src/raft/wal/codec.js";
import { crc32c } from "../../../src/raft/wal/crc32c.js";
import { preallocateChunkBytes, recordPayloadBytesMax, WalCorruptionError, WalSyncError, WriteAheadLog } from "../../../src/raft/wal/wal.js";
import { FailingFsync } from "./failing-fsync.js";

const logger = pino({ level: "silent" });

function entry(index: number, term: number, text = `value-${index}`): Entry {
  return { index, term, type: "normal", data: Buffer.from(text) };
}

function range(from: number, to: number, term: number): Entry[] {
  const entries: Entry[] = [];
  for (let index = from; index <= to; index += 1) entries.push(entry(index, term));
  return entries;
}

async function tempDir(t: { after: (fn: () => Promise<void>) => void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "shoal-wal-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function onlySegment(dir: string): Promise<string> {
  const files = (await readdir(dir)).filter((file) => file.endsWith(".wal"));
  assert.equal(files.length, 1);
  return join(dir, files[0] ?? "");
}

function simplify(entries: readonly Entry[]): [number, number, string][] {
  return entries.map((e) => [e.index, e.term, Buffer.from(e.data).toString()]);
}

test("entries and hard state survive close and reopen", async (t) => {
  const dir = await tempDir(t);
  const { wal } = await WriteAheadLog.open({ dir, logger, afterIndex: 0 });
  wal.append(range(1, 10, 1));
  wal.setHardState({ term: 1, vote: 2, commit: 7 });
  await wal.sync();
  await wal.close();
  const reopened = await WriteAheadLog.open({ dir, logger, afterIndex: 0 });
  t.after(() => reopened.wal.close());
  assert.deepEqual(simplify(reopened.state.entries), simplify(range(1, 10, 1)));
  assert.deepEqual(reopened.state.hardState, { term: 1, vote: 2, commit: 7 });
});

test("records buffered but never synced are not on disk", async (t) => {
  const dir = await tempDir(t);
  const { wal } = await WriteAheadLog.open({ dir, logger, afterIndex: 0 });
  wal.append(range(1, 3, 1));
  await wal.sync();
  wal.append(range(4, 5, 1));
  await wal.close();
  const reopened = await WriteAheadLog.open({ dir, logger, afterIndex: 0 });
  t.after(() => reopened.wal.close());
  assert.deepEqual(simplify(reopened.state.entries), simplify(range(1, 3, 1)));
});

test("a torn last record is truncated at every byte offset and earlier records survive", async (t) => {
  const dir = await tempDir(t);
  const { wal } = await WriteAheadLog.open({ dir, logger, afterIndex: 0 });
  wal.append(range(1, 5, 1));
  wal.setHardState({ term: 1, vote: 1, commit: 5 });
  await wal.sync();
  const segment = await onlySegment(dir);
  const lastRecordStart = wal.writtenBytes();
  wal.append([entry(6, 1, "the torn one")]);
  await wal.sync();
  const lastRecordEnd = wal.writtenBytes();
  await wal.close();
  const full = await readFile(segment);
  assert.ok(full.length >= lastRecordEnd && lastRecordEnd > lastRecordStart + 9);
  const scratch = await tempDir(t);
  // A crash leaves the file cut short (no preallocated tail) or zeros where the rest of the
  // record should be (inside the preallocated tail): both are a torn tail.
  for (const variant of ["cut", "zeroed"] as const) {
    for (let cut = lastRecordStart; cut < lastRecordEnd; cut += 1) {
      const label = `${variant} at ${cut}`;
      const caseDir = join(scratch, `${variant}-${cut}`);
      await mkdir(caseDir);
      const caseSegment = join(caseDir, segment.slice(dir.length + 1));
      const bytes = variant === "cut" ? full.subarray(0, cut) : Buffer.concat([full.subarray(0, cut), Buffer.alloc(full.length - cut)]);
      await writeFile(caseSegment, bytes);
      const recovered = await WriteAheadLog.open({ dir: caseDir, logger, afterIndex: 0 });
      assert.deepEqual(simplify(recovered.state.entries), simplify(range(1, 5, 1)), label);
      assert.deepEqual(recovered.state.hardState, { term: 1, vote: 1, commit: 5 }, label);
      assert.equal(recovered.wal.writtenBytes(), lastRecordStart, label);
      if (variant === "cut") assert.equal((await stat(caseSegment)).size, lastRecordStart, label);
      // The log accepts new appends where the torn record was, and they survive a restart.
      recovered.wal.append([entry(6, 2, "rewritten")]);
      await recovered.wal.sync();
      await recovered.wal.close();
      const again = await WriteAheadLog.open({ dir: caseDir, logger, afterIndex: 0 });
      assert.deepEqual(again.state.entries.at(-1)?.term, 2, label);
      assert.equal(again.state.entries.length, 6, label);
      await again.wal.close();
      await rm(caseDir, { recursive: true, force: true });
    }
  }
});

test("segments are preallocated and the zero tail is not mistaken for records", async (t) => {
  const dir = await tempDir(t);
  const { wal } = await WriteAheadLog.open({ dir, logger, afterIndex: 0 });
  wal.append(range(1, 3, 1));
  await wal.sync();
  const segment = await onlySegment(dir);
  assert.ok((await stat(segment)).size >= preallocateChunkBytes, "segment is zero-filled ahead");
  assert.ok(wal.writtenBytes() < 1024);
  await wal.close();
  const reopened = await WriteAheadLog.open({ dir, logger, afterIndex: 0 });
  t.after(() => reopened.wal.close());
  assert.deepEqual(simplify(reopened.state.entries), simplify(range(1, 3, 1)));
  assert.ok((await stat(segment)).size >= preallocateChunkBytes, "recovery keeps the preallocation");
});

test("recovered entries are copies that do not pin the segment file's buffer", async (t) => {
  const dir = await tempDir(t);
  const { wal } = await WriteAheadLog.open({ dir, logger, afterIndex: 0 });
  wal.append(range(1, 3, 1));
  await wal.sync();
  await wal.close();
  const reopened = await WriteAheadLog.open({ dir, logger, afterIndex: 0 });
  t.after(() => reopened.wal.close());
  assert.equal(reopened.state.entries.length, 3);
  for (const recovered of reopened.state.entries) {
    // The segment is read whole, preallocated zeros included: a view into it keeps all of it.
    assert.ok(recovered.data.buffer.byteLength < preallocateChunkBytes, `entry ${recovered.index} holds ${recovered.data.buffer.byteLength} bytes`);
  }
});

test("a flipped bit in a middle record refuses to start, naming file and offset", async (t) => {
  const dir = await tempDir(t);
  const { wal } = await WriteAheadLog.open({ dir, logger, afterIndex: 0 });
  wal.append(range(1, 2, 1));
  await wal.sync();
  const segment = await onlySegment(dir);
  const middleRecordStart = wal.writtenBytes();
  wal.append(range(3, 3, 1));
  await wal.sync();
  wal.append(range(4, 8, 1));
  await wal.sync();
  await wal.close();
  const bytes = await readFile(segment);
  const flipAt = middleRecordStart + 20;
  bytes[flipAt] = (bytes[flipAt] ?? 0) ^ 0x10;
  await writeFile(segment, bytes);
  await assert.rejects(WriteAheadLog.open({ dir, logger, afterIndex: 0 }), (error: unknown) => {
    assert.ok(error instanceof WalCorruptionError);
    assert.equal(error.file, segment.slice(dir.length + 1));
    assert.equal(error.offset, middleRecordStart);
    assert.match(error.message, /checksum/);
    return true;
  });
  // Refusing must not have "repaired" anything.
  assert.deepEqual(await readFile(segment), bytes);
});

test("an append at a lower index replaces the tail on replay (conflict truncation)", async (t) => {
  const dir = await tempDir(t);
  const { wal } = await WriteAheadLog.open({ dir, logger, afterIndex: 0 });
  wal.append(range(1, 6, 1));
  await wal.sync();
  wal.append(range(3, 4, 2));
  await wal.sync();
  wal.append(range(5, 5, 3));
  await wal.sync();
  await wal.close();
  const reopened = await WriteAheadLog.open({ dir, logger, afterIndex: 0 });
  t.after(() => reopened.wal.close());
  assert.deepEqual(
    reopened.state.entries.map((e) => [e.index, e.term]),
    [
      [1, 1],
      [2, 1],
      [3, 2],
      [4, 2],
      [5, 3],
    ],
  );
});

test("segments roll over at the target size and replay across them", async (t) => {
  const dir = await tempDir(t);
  const { wal } = await WriteAheadLog.open({ dir, logger, afterIndex: 0, segmentBytesTarget: 1024 });
  for (let index = 1; index <= 200; index += 10) {
    wal.append(range(index, index + 9, 1));
    wal.setHardState({ term: 1, vote: 1, commit: index });
    await wal.sync();
  }
  const segments = wal.segmentFiles();
  assert.ok(segments.length >= 5, `expected several segments, got ${segments.length}`);
  assert.deepEqual((await readdir(dir)).filter((f) => f.endsWith(".wal")).sort(), [...segments].sort());
  await wal.close();
  const reopened = await WriteAheadLog.open({ dir, logger, afterIndex: 0, segmentBytesTarget: 1024 });
  t.after(() => reopened.wal.close());
  assert.deepEqual(simplify(reopened.state.entries), simplify(range(1, 200, 1)));
  assert.deepEqual(reopened.state.hardState, { term: 1, vote: 1, commit: 191 });
});

test("segments wholly before a snapshot are released and the rest still replays", async (t) => {
  const dir = await tempDir(t);
  const { wal } = await WriteAheadLog.open({ dir, logger, afterIndex: 0, segmentBytesTarget: 1024 });
  for (let index = 1; index <= 200; index += 10) {
    wal.append(range(index, index + 9, 1));
    await wal.sync();
  }
  wal.setHardState({ term: 1, vote: 3, commit: 200 });
  wal.markSnapshot({ index: 150, term: 1 }, { resetsLog: false });
  await wal.sync();
  const before = wal.segmentFiles().length;
  const released = await wal.releaseBefore(150);
  assert.ok(released > 0 && released < before, `released ${released} of ${before}`);
  await wal.close();
  const reopened = await WriteAheadLog.open({ dir, logger, afterIndex: 150, segmentBytesTarget: 1024 });
  t.after(() => reopened.wal.close());
  assert.deepEqual(simplify(reopened.state.entries), simplify(range(151, 200, 1)));
  assert.deepEqual(reopened.state.snapshotMarker, { index: 150, term: 1 });
  assert.deepEqual(reopened.state.hardState, { term: 1, vote: 3, commit: 200 });
  // Replaying from before the snapshot now finds a gap, and says so instead of inventing entries.
  await assert.rejects(WriteAheadLog.open({ dir, logger, afterIndex: 0 }), WalCorruptionError);
});

test("a failed fsync is fatal: sync() throws WalSyncError and the log refuses further use", async (t) => {
  const dir = await tempDir(t);
  const fsync = new FailingFsync();
  t.after(() => fsync.close());
  const { wal } = await WriteAheadLog.open({ dir, logger, afterIndex: 0, openSegment: fsync.open });
  wal.append(range(1, 2, 1));
  await wal.sync();
  fsync.failing = true;
  wal.append(range(3, 3, 1));
  await assert.rejects(wal.sync(), WalSyncError);
  fsync.failing = false;
  // Never retried-and-ignored: the log stays failed even though fsync would work now.
  assert.throws(() => wal.append(range(4, 4, 1)), WalSyncError);
  await assert.rejects(wal.sync(), WalSyncError);
});

test("a snapshot from the leader voids the whole earlier log on replay", async (t) => {
  const dir = await tempDir(t);
  const { wal } = await WriteAheadLog.open({ dir, logger, afterIndex: 0 });
  wal.append(range(1, 20, 1));
  await wal.sync();
  // The leader's snapshot at 10 (term 3) replaced a log whose entries 11..20 are stale.
  wal.markSnapshot({ index: 10, term: 3 }, { resetsLog: true });
  await wal.sync();
  await wal.close();
  const reopened = await WriteAheadLog.open({ dir, logger, afterIndex: 10 });
  assert.deepEqual(reopened.state.entries, []);
  assert.equal(reopened.wal.lastIndex(), 10);
  reopened.wal.append(range(11, 12, 3));
  await reopened.wal.sync();
  await reopened.wal.close();
  const again = await WriteAheadLog.open({ dir, logger, afterIndex: 10 });
  t.after(() => again.wal.close());
  assert.deepEqual(
    again.state.entries.map((e) => [e.index, e.term]),
    [
      [11, 3],
      [12, 3],
    ],
  );
  // Without the snapshot file the marker points at, replay refuses instead of guessing.
  await assert.rejects(WriteAheadLog.open({ dir, logger, afterIndex: 0 }), WalCorruptionError);
});

test("a local snapshot marker keeps the entries after it", async (t) => {
  const dir = await tempDir(t);
  const { wal } = await WriteAheadLog.open({ dir, logger, afterIndex: 0 });
  wal.append(range(1, 20, 1));
  wal.markSnapshot({ index: 10, term: 1 }, { resetsLog: false });
  await wal.sync();
  await wal.close();
  const reopened = await WriteAheadLog.open({ dir, logger, afterIndex: 10 });
  t.after(() => reopened.wal.close());
  assert.deepEqual(simplify(reopened.state.entries), simplify(range(11, 20, 1)));
});

/** Reopening `dir` must refuse with WalCorruptionError at `offset`, leaving the files as they were. */
async function assertRefusedAt(dir: string, segment: string, offset: number, label: string): Promise<void> {
  const before = await readFile(segment);
  await assert.rejects(WriteAheadLog.open({ dir, logger, afterIndex: 0 }), (error: unknown) => {
    assert.ok(error instanceof WalCorruptionError, label);
    assert.equal(error.offset, offset, label);
    return true;
  });
  assert.deepEqual(await readFile(segment), before, `${label}: refusing must not repair`);
}

test("a flipped bit in the lengths and headers of synced records refuses to start instead of reading a shorter log", async (t) => {
  const dir = await tempDir(t);
  const { wal } = await WriteAheadLog.open({ dir, logger, afterIndex: 0 });
  wal.append(range(1, 2, 1));
  await wal.sync();
  const middleBatchStart = wal.writtenBytes();
  wal.append(range(3, 5, 1));
  wal.setHardState({ term: 1, vote: 1, commit: 5 });
  await wal.sync();
  wal.append(range(6, 8, 1));
  wal.setHardState({ term: 1, vote: 1, commit: 8 });
  await wal.sync();
  await wal.close();
  const segment = await onlySegment(dir);
  const original = await readFile(segment);
  // The first 32 bytes of a batch hold its header and its first record's length. A length
  // that put the record's end in the zero-filled tail once read as a torn tail: the log
  // lost the entries after it and the hard state that voted in term 1, or, for the
  // segment's first record, the whole segment was recreated empty.
  for (const batchStart of [0, middleBatchStart]) {
    for (let offset = batchStart; offset < batchStart + 32; offset += 1) {
      for (const bit of [0, 6]) {
        const bytes = Buffer.from(original);
        bytes[offset] = (bytes[offset] ?? 0) ^ (1 << bit);
        await writeFile(segment, bytes);
        await assertRefusedAt(dir, segment, batchStart, `bit ${bit} of byte ${offset}`);
      }
    }
  }
});

test("a torn batch is dropped whole, whichever of its pages reached the disk", async (t) => {
  const dir = await tempDir(t);
  const { wal } = await WriteAheadLog.open({ dir, logger, afterIndex: 0 });
  wal.append(range(1, 3, 1));
  wal.setHardState({ term: 1, vote: 1, commit: 3 });
  await wal.sync();
  const tornStart = wal.writtenBytes();
  // Three pages and more of records in one batch: a crash may persist any of its pages.
  wal.append([entry(4, 1, "a".repeat(5000)), entry(5, 1, "b".repeat(5000)), entry(6, 1, "c")]);
  wal.setHardState({ term: 1, vote: 1, commit: 6 });
  await wal.sync();
  const tornEnd = wal.writtenBytes();
  await wal.close();
  const segment = await onlySegment(dir);
  const full = await readFile(segment);
  const scratch = await tempDir(t);
  const pageBytes = 4096;
  const firstPage = Math.floor(tornStart / pageBytes) * pageBytes;
  for (let page = firstPage; page < tornEnd; page += pageBytes) {
    const label = `page at ${page} lost`;
    const caseDir = join(scratch, `page-${page}`);
    await mkdir(caseDir);
    const caseSegment = join(caseDir, segment.slice(dir.length + 1));
    // The page is lost (zeros), the batch's pages before and after it reached the disk.
    const bytes = Buffer.from(full);
    bytes.fill(0, Math.max(page, tornStart), Math.min(page + pageBytes, tornEnd));
    await writeFile(caseSegment, bytes);
    const recovered = await WriteAheadLog.open({ dir: caseDir, logger, afterIndex: 0 });
    assert.deepEqual(simplify(recovered.state.entries), simplify(range(1, 3, 1)), label);
    assert.deepEqual(recovered.state.hardState, { term: 1, vote: 1, commit: 3 }, label);
    assert.equal(recovered.wal.writtenBytes(), tornStart, label);
    await recovered.wal.close();
  }
});

test("a damaged batch with a synced batch after it refuses to start, even at the end of the log", async (t) => {
  const dir = await tempDir(t);
  const { wal } = await WriteAheadLog.open({ dir, logger, afterIndex: 0 });
  wal.append(range(1, 3, 1));
  await wal.sync();
  const damagedStart = wal.writtenBytes();
  wal.append([entry(4, 1, "a".repeat(5000))]);
  await wal.sync();
  const lastBatchStart = wal.writtenBytes();
  wal.append(range(5, 5, 1));
  wal.setHardState({ term: 1, vote: 1, commit: 5 });
  await wal.sync();
  const lastBatchEnd = wal.writtenBytes();
  await wal.close();
  const segment = await onlySegment(dir);
  const original = await readFile(segment);
  // Zeros where the damaged batch starts: on their own they would read as a torn tail.
  const zeroed = Buffer.from(original);
  zeroed.fill(0, damagedStart, damagedStart + 4096);
  await writeFile(segment, zeroed);
  await assertRefusedAt(dir, segment, damagedStart, "zeroed page before the last batch");
  // A flipped bit in the damaged batch, and the last batch torn after its header: that
  // header was written only once the damaged batch was synced, so the refusal stands.
  const flipped = Buffer.from(original);
  flipped[damagedStart + 100] = (flipped[damagedStart + 100] ?? 0) ^ 0x04;
  flipped.fill(0, lastBatchStart + 24, lastBatchEnd);
  await writeFile(segment, flipped);
  await assertRefusedAt(dir, segment, damagedStart, "damaged batch, then a torn one");
});

test("a segment started after a sync holds the state that sync made durable, not what was buffered during it", async (t) => {
  const dir = await tempDir(t);
  const { wal } = await WriteAheadLog.open({ dir, logger, afterIndex: 0, segmentBytesTarget: 4096 });
  wal.append(range(1, 200, 1));
  wal.setHardState({ term: 1, vote: 1, commit: 200 });
  // Crosses the target: the segment rolls once this batch's fsync is done.
  const syncing = wal.sync();
  // Buffered while that fsync runs (the driver saves the next Ready meanwhile): a commit
  // index for entries that are not on disk yet.
  wal.append(range(201, 210, 1));
  wal.setHardState({ term: 1, vote: 1, commit: 210 });
  await syncing;
  assert.equal(wal.segmentFiles().length, 2);
  // Power fails now: the disk holds exactly what the files hold.
  const crashed = await tempDir(t);
  for (const file of wal.segmentFiles()) await writeFile(join(crashed, file), await readFile(join(dir, file)));
  await wal.close();
  const recovered = await WriteAheadLog.open({ dir: crashed, logger, afterIndex: 0 });
  t.after(() => recovered.wal.close());
  assert.equal(recovered.state.entries.at(-1)?.index, 200);
  assert.deepEqual(recovered.state.hardState, { term: 1, vote: 1, commit: 200 });
  assert.equal(recovered.wal.segmentFiles()[1], "0000000000000001-00000000000000c9.wal", "named for entry 201, the next to come");
});

test("a refused oversized append buffers nothing, and the next sync writes a readable log", async (t) => {
  const dir = await tempDir(t);
  const { wal } = await WriteAheadLog.open({ dir, logger, afterIndex: 0 });
  wal.append(range(1, 2, 1));
  await wal.sync();
  assert.throws(() => wal.append([entry(3, 1), { index: 4, term: 1, type: "normal", data: Buffer.alloc(recordPayloadBytesMax) }]), /exceeds recordPayloadBytesMax/);
  assert.equal(wal.lastIndex(), 2);
  wal.append(range(3, 4, 1));
  await wal.sync();
  await wal.close();
  const reopened = await WriteAheadLog.open({ dir, logger, afterIndex: 0 });
  t.after(() => reopened.wal.close());
  assert.deepEqual(simplify(reopened.state.entries), simplify(range(1, 4, 1)));
});

/** A record of a format 1 segment: [length][crc32c of type and payload][type][payload]. */
function formatOneRecord(writer: ByteWriter, type: number, encode: (writer: ByteWriter) => void): void {
  const start = writer.length;
  writer.u32(0);
  writer.u32(0);
  writer.u8(type);
  encode(writer);
  writer.patchU32(start, writer.length - start - 9);
  writer.patchU32(start + 4, crc32c(writer.view(), 0, start + 8, writer.length));
}

function formatOneSegment(entries: readonly Entry[], hardState: HardState): { bytes: Buffer; lastRecordStart: number } {
  const writer = new ByteWriter();
  formatOneRecord(writer, 1, (w) => {
    w.u32(1);
    w.u64(0);
  });
  formatOneRecord(writer, 3, (w) => encodeHardState(w, hardState));
  let lastRecordStart = 0;
  for (const e of entries) {
    lastRecordStart = writer.length;
    formatOneRecord(writer, 2, (w) => encodeEntry(w, e));
  }
  return { bytes: Buffer.from(writer.view()), lastRecordStart };
}

test("a log written in format 1 is still read, torn tail included, and new batches go into a format 2 segment after it", async (t) => {
  const dir = await tempDir(t);
  const { bytes, lastRecordStart } = formatOneSegment(range(1, 4, 2), { term: 2, vote: 3, commit: 3 });
  const oldSegment = "0000000000000000-0000000000000001.wal";
  // Entry 4 was torn by a crash: cut short, as format 1 recovery has always repaired.
  await writeFile(join(dir, oldSegment), bytes.subarray(0, lastRecordStart + 5));
  const { wal, state } = await WriteAheadLog.open({ dir, logger, afterIndex: 0 });
  assert.deepEqual(simplify(state.entries), simplify(range(1, 3, 2)));
  assert.deepEqual(state.hardState, { term: 2, vote: 3, commit: 3 });
  assert.deepEqual(wal.segmentFiles(), [oldSegment, "0000000000000001-0000000000000004.wal"]);
  assert.equal((await stat(join(dir, oldSegment))).size, lastRecordStart, "the torn record was truncated");
  wal.append(range(4, 5, 3));
  wal.setHardState({ term: 3, vote: 1, commit: 5 });
  await wal.sync();
  await wal.close();
  const reopened = await WriteAheadLog.open({ dir, logger, afterIndex: 0 });
  t.after(() => reopened.wal.close());
  assert.deepEqual(simplify(reopened.state.entries), [...simplify(range(1, 3, 2)), ...simplify(range(4, 5, 3))]);
  assert.deepEqual(reopened.state.hardState, { term: 3, vote: 1, commit: 5 });
  assert.equal(reopened.wal.segmentFiles().length, 2, "no further segment once the last one is format 2");
});
