import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

import { pino } from "pino";

import type { Entry } from "../../../src/raft/core/types.js";
import { snapshotFileName, Snapshotter } from "../../../src/raft/snap/snapshotter.js";
import { DiskLogStorage } from "../../../src/raft/wal/disk-storage.js";
import { waitFor } from "../node/cluster.js";
import { GatedFsync } from "../node/gated-fsync.js";
import { GatedSnapshotSync } from "../node/gated-snapshot-sync.js";
import { logStorageSuite } from "../storage/log-storage-suite.js";

const logger = pino({ level: "silent" });

logStorageSuite("DiskLogStorage", async () => {
  const dir = await mkdtemp(join(tmpdir(), "shoal-disk-storage-"));
  const storage = await DiskLogStorage.open({ dir, logger });
  return {
    storage,
    close: async () => {
      await storage.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

function entry(term: number, index: number): Entry {
  return { term, index, type: "normal", data: Buffer.from(`e${index}`) };
}

test("DiskLogStorage: reopening restores snapshot, later entries and hard state", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "shoal-disk-storage-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const storage = await DiskLogStorage.open({ dir, logger, segmentBytesTarget: 512 });
  const entries = Array.from({ length: 60 }, (_, i) => entry(1 + Math.floor(i / 20), i + 1));
  await storage.save({ snapshot: null, entries, hardState: { term: 3, vote: 2, commit: 55 } });
  await storage.createSnapshot(40, { voters: [1, 2, 3], learners: [] }, Buffer.from("state@40"));
  await storage.compact(35);
  await storage.close();

  const reopened = await DiskLogStorage.open({ dir, logger, segmentBytesTarget: 512 });
  t.after(() => reopened.close());
  assert.equal(reopened.snapshot().metadata.index, 40);
  assert.equal(Buffer.from(reopened.snapshot().data).toString(), "state@40");
  assert.deepEqual(reopened.initialState(), {
    hardState: { term: 3, vote: 2, commit: 55 },
    confState: { voters: [1, 2, 3], learners: [] },
  });
  assert.equal(reopened.firstIndex(), 41);
  assert.equal(reopened.lastIndex(), 60);
  assert.equal(reopened.term(40), 2);
  assert.deepEqual(
    reopened.entries(41, 61, Infinity).map((e) => [e.index, e.term]),
    entries.slice(40).map((e) => [e.index, e.term]),
  );
});

test("DiskLogStorage: a snapshot received from a leader replaces the log durably", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "shoal-disk-storage-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const storage = await DiskLogStorage.open({ dir, logger });
  await storage.save({ snapshot: null, entries: [entry(1, 1), entry(1, 2)], hardState: { term: 1, vote: 1, commit: 2 } });
  await storage.save({
    snapshot: { metadata: { index: 100, term: 5, confState: { voters: [1, 2], learners: [] } }, data: Buffer.from("s") },
    entries: [entry(5, 101)],
    hardState: { term: 5, vote: 0, commit: 100 },
  });
  await storage.close();
  const reopened = await DiskLogStorage.open({ dir, logger });
  t.after(() => reopened.close());
  assert.equal(reopened.firstIndex(), 101);
  assert.equal(reopened.lastIndex(), 101);
  assert.equal(reopened.initialState().hardState.commit, 100);
});

test("DiskLogStorage: a crash between a snapshot's durable file and its WAL marker restarts from that snapshot", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "shoal-disk-storage-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const storage = await DiskLogStorage.open({ dir, logger, segmentBytesTarget: 512 });
  const entries = Array.from({ length: 30 }, (_, i) => entry(1, i + 1));
  await storage.save({ snapshot: null, entries, hardState: { term: 1, vote: 1, commit: 30 } });
  await storage.close();
  // What createSnapshot leaves when the process dies right after the file's fsync: the
  // file, no marker, no compaction; and a later snapshot's unfinished temporary file.
  const snapshotter = new Snapshotter({ dir: join(dir, "snap"), logger });
  await snapshotter.save({ metadata: { index: 20, term: 1, confState: { voters: [1], learners: [] } }, data: Buffer.from("state@20") });
  await writeFile(join(dir, "snap", `${snapshotFileName(1, 25)}.tmp`), Buffer.from("torn"));

  const reopened = await DiskLogStorage.open({ dir, logger, segmentBytesTarget: 512 });
  t.after(() => reopened.close());
  assert.equal(reopened.snapshot().metadata.index, 20);
  assert.equal(Buffer.from(reopened.snapshot().data).toString(), "state@20");
  assert.equal(reopened.firstIndex(), 21);
  assert.equal(reopened.lastIndex(), 30);
  assert.equal(reopened.initialState().hardState.commit, 30);
  assert.deepEqual(reopened.skippedSnapshots(), []);
});

test("DiskLogStorage: a snapshot written in the background syncs its marker after a save's fsync, never beside it", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "shoal-disk-storage-"));
  const walGate = new GatedFsync();
  const snapshotGate = new GatedSnapshotSync();
  t.after(async () => {
    await walGate.dispose();
    await snapshotGate.dispose();
    await rm(dir, { recursive: true, force: true });
  });
  const storage = await DiskLogStorage.open({ dir, logger, openSegment: walGate.open, openSnapshotFile: snapshotGate.open });
  await storage.save({ snapshot: null, entries: Array.from({ length: 20 }, (_, i) => entry(1, i + 1)), hardState: { term: 1, vote: 1, commit: 20 } });
  snapshotGate.close();
  const snapshot = storage.createSnapshot(15, { voters: [1], learners: [] }, Buffer.from("state@15"));
  await waitFor("the snapshot file's fsync to be held", () => snapshotGate.held() === 1);
  walGate.close();
  const save = storage.save({ snapshot: null, entries: [entry(2, 21)], hardState: { term: 2, vote: 1, commit: 20 } });
  await waitFor("the save's fsync to be held", () => walGate.held() === 1);
  let snapshotSettled = false;
  const snapshotDone = snapshot.finally(() => {
    snapshotSettled = true;
  });
  snapshotGate.openGate();
  await waitFor("the snapshot file to be in place", () => existsSync(join(dir, "snap", snapshotFileName(1, 15))));
  // Its marker must now wait for the save's fsync: that nothing settles can only be
  // watched over a window (a second sync beside the first would fail at once).
  const windowEnds = Date.now() + 100;
  while (Date.now() < windowEnds && !snapshotSettled) await new Promise((resolve) => setTimeout(resolve, 5));
  assert.equal(snapshotSettled, false, "the snapshot finished while the save's fsync was held");
  walGate.openGate();
  await Promise.all([save, snapshotDone]);
  await storage.compact(15);
  await storage.close();
  const reopened = await DiskLogStorage.open({ dir, logger });
  t.after(() => reopened.close());
  assert.equal(reopened.snapshot().metadata.index, 15);
  assert.equal(reopened.lastIndex(), 21);
  assert.equal(reopened.initialState().hardState.term, 2);
});

test("DiskLogStorage: saveBuffered takes a commit-index-only save without an fsync, and refuses one that needs it", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "shoal-disk-storage-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const storage = await DiskLogStorage.open({ dir, logger });
  t.after(() => storage.close());
  await storage.save({ snapshot: null, entries: [entry(1, 1), entry(1, 2)], hardState: { term: 1, vote: 1, commit: 0 } });
  const syncs = storage.walSyncCount();
  assert.equal(storage.saveBuffered({ snapshot: null, entries: [], hardState: { term: 1, vote: 1, commit: 2 } }), true);
  assert.equal(storage.walSyncCount(), syncs);
  assert.deepEqual(storage.initialState().hardState, { term: 1, vote: 1, commit: 2 });
  // New entries, a new term or a new vote must be durable first: nothing is taken.
  assert.equal(storage.saveBuffered({ snapshot: null, entries: [entry(1, 3)], hardState: null }), false);
  assert.equal(storage.saveBuffered({ snapshot: null, entries: [], hardState: { term: 2, vote: 0, commit: 2 } }), false);
  assert.equal(storage.lastIndex(), 2);
  assert.deepEqual(storage.initialState().hardState, { term: 1, vote: 1, commit: 2 });
  // The buffered commit index goes out with the next fsync.
  await storage.save({ snapshot: null, entries: [entry(1, 3)], hardState: null });
  await storage.close();
  const reopened = await DiskLogStorage.open({ dir, logger });
  t.after(() => reopened.close());
  assert.deepEqual(reopened.initialState().hardState, { term: 1, vote: 1, commit: 2 });
  assert.equal(reopened.lastIndex(), 3);
});
