import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

import { pino } from "pino";

import type { Entry } from "../../../src/raft/core/types.js";
import { DiskLogStorage } from "../../../src/raft/wal/disk-storage.js";
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
