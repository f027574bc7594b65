// A conformance suite for LogStorage + WritableLogStorage implementations (after
// containerd's content testsuite): MemoryLogStorage runs it here, the WAL-backed storage
// runs the same cases. Each case gets a fresh storage from the factory and closes it.
import assert from "node:assert/strict";
import { test } from "node:test";

import type { ConfState, Entry, Snapshot } from "../../../src/raft/core/types.js";
import {
  CompactedError,
  SnapshotOutOfDateError,
  UnavailableEntriesError,
  type LogStorage,
  type WritableLogStorage,
} from "../../../src/raft/storage/index.js";

export interface LogStorageUnderTest {
  readonly storage: LogStorage & WritableLogStorage;
  close(): Promise<void>;
}

export type LogStorageFactory = () => Promise<LogStorageUnderTest>;

const confState: ConfState = { voters: [1, 2, 3], learners: [] };

function entry(term: number, index: number, data = ""): Entry {
  return { term, index, type: "normal", data: new TextEncoder().encode(data) };
}

function indexes(entries: readonly Entry[]): [number, number][] {
  return entries.map((e) => [e.index, e.term]);
}

/** Registers the suite's tests under `name`. */
export function logStorageSuite(name: string, factory: LogStorageFactory): void {
  const withStorage = (title: string, body: (storage: LogStorage & WritableLogStorage) => void | Promise<void>): void => {
    test(`${name}: ${title}`, async () => {
      const underTest = await factory();
      try {
        await body(underTest.storage);
      } finally {
        await underTest.close();
      }
    });
  };

  /** Entries 1..5 (terms 1,1,2,3,3), a snapshot at 3 and compaction up to 3. */
  const compactedAt3 = async (storage: LogStorage & WritableLogStorage): Promise<Snapshot> => {
    await storage.append([entry(1, 1), entry(1, 2), entry(2, 3), entry(3, 4), entry(3, 5)]);
    const snapshot = await storage.createSnapshot(3, confState, new TextEncoder().encode("state@3"));
    await storage.compact(3);
    return snapshot;
  };

  withStorage("an empty log has firstIndex 1, lastIndex 0, term(0) 0 and no entries", (storage) => {
    assert.equal(storage.firstIndex(), 1);
    assert.equal(storage.lastIndex(), 0);
    assert.equal(storage.term(0), 0);
    assert.deepEqual(storage.entries(1, 1, Infinity), []);
    assert.throws(() => storage.term(1), UnavailableEntriesError);
    assert.throws(() => storage.entries(1, 2, Infinity), UnavailableEntriesError);
    assert.equal(storage.snapshot().metadata.index, 0);
  });

  withStorage("initialState reports what was set", async (storage) => {
    await storage.setHardState({ term: 3, vote: 2, commit: 0 });
    await storage.setConfState(confState);
    const state = storage.initialState();
    assert.deepEqual(state.hardState, { term: 3, vote: 2, commit: 0 });
    assert.deepEqual(state.confState.voters, [1, 2, 3]);
  });

  withStorage("append stores entries and serves ranges", async (storage) => {
    await storage.append([entry(1, 1, "a"), entry(1, 2, "b"), entry(2, 3, "c")]);
    assert.equal(storage.lastIndex(), 3);
    assert.deepEqual(indexes(storage.entries(1, 4, Infinity)), [[1, 1], [2, 1], [3, 2]]);
    assert.deepEqual(indexes(storage.entries(2, 3, Infinity)), [[2, 1]]);
    assert.equal(new TextDecoder().decode(storage.entries(3, 4, Infinity)[0]?.data), "c");
    assert.equal(storage.term(3), 2);
  });

  withStorage("append replaces a conflicting suffix", async (storage) => {
    await storage.append([entry(1, 1), entry(1, 2), entry(1, 3), entry(1, 4)]);
    await storage.append([entry(2, 3), entry(2, 4)]);
    assert.deepEqual(indexes(storage.entries(1, 5, Infinity)), [[1, 1], [2, 1], [3, 2], [4, 2]]);
    await storage.append([entry(3, 2)]);
    assert.equal(storage.lastIndex(), 2, "entries after a shorter replacement are dropped");
    assert.equal(storage.term(2), 3);
  });

  withStorage("append refuses a gap", async (storage) => {
    await storage.append([entry(1, 1)]);
    await assert.rejects(async () => storage.append([entry(1, 3)]), /gap/);
    assert.equal(storage.lastIndex(), 1);
  });

  withStorage("entries honours maxBytes but returns at least one entry", async (storage) => {
    await storage.append([entry(1, 1, "x".repeat(100)), entry(1, 2, "x".repeat(100)), entry(1, 3, "x".repeat(100))]);
    assert.equal(storage.entries(1, 4, 0).length, 1);
    assert.equal(storage.entries(1, 4, 250).length, 2);
    assert.equal(storage.entries(1, 4, Infinity).length, 3);
  });

  withStorage("compaction releases entries and keeps the term at firstIndex - 1", async (storage) => {
    await compactedAt3(storage);
    assert.equal(storage.firstIndex(), 4);
    assert.equal(storage.lastIndex(), 5);
    assert.equal(storage.term(3), 2);
    assert.throws(() => storage.term(2), CompactedError);
    assert.throws(() => storage.entries(3, 5, Infinity), CompactedError);
    assert.deepEqual(indexes(storage.entries(4, 6, Infinity)), [[4, 3], [5, 3]]);
  });

  withStorage("compaction refuses an index already compacted or past the snapshot", async (storage) => {
    await compactedAt3(storage);
    await assert.rejects(async () => storage.compact(3), CompactedError);
    await assert.rejects(async () => storage.compact(5), UnavailableEntriesError);
  });

  withStorage("append skips entries at or below the compaction point", async (storage) => {
    await compactedAt3(storage);
    await storage.append([entry(2, 3), entry(3, 4), entry(4, 5), entry(4, 6)]);
    assert.equal(storage.firstIndex(), 4);
    assert.deepEqual(indexes(storage.entries(4, 7, Infinity)), [[4, 3], [5, 4], [6, 4]]);
  });

  withStorage("createSnapshot records index, term, membership and data", async (storage) => {
    const snapshot = await compactedAt3(storage);
    assert.deepEqual(snapshot.metadata, { index: 3, term: 2, confState });
    assert.equal(new TextDecoder().decode(storage.snapshot().data), "state@3");
    await assert.rejects(async () => storage.createSnapshot(3, confState, new Uint8Array(0)), SnapshotOutOfDateError);
    await assert.rejects(async () => storage.createSnapshot(9, confState, new Uint8Array(0)), UnavailableEntriesError);
  });

  withStorage("applySnapshot replaces the log and refuses an older snapshot", async (storage) => {
    await compactedAt3(storage);
    const newer: Snapshot = { metadata: { index: 10, term: 5, confState }, data: new TextEncoder().encode("state@10") };
    await storage.applySnapshot(newer);
    assert.equal(storage.firstIndex(), 11);
    assert.equal(storage.lastIndex(), 10);
    assert.equal(storage.term(10), 5);
    assert.equal(storage.snapshot().metadata.index, 10);
    assert.deepEqual(storage.initialState().confState.voters, [1, 2, 3]);
    const older: Snapshot = { metadata: { index: 4, term: 3, confState }, data: new Uint8Array(0) };
    await assert.rejects(async () => storage.applySnapshot(older), SnapshotOutOfDateError);
    assert.equal(storage.snapshot().metadata.index, 10);
    await storage.append([entry(5, 11)]);
    assert.deepEqual(indexes(storage.entries(11, 12, Infinity)), [[11, 5]]);
  });
}
