import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

import { pino } from "pino";

import type { Entry } from "../../../src/raft/core/types.js";
import { preallocateChunkBytes, WalCorruptionError, WalSyncError, WriteAheadLog } from "../../../src/raft/wal/wal.js";
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
