import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

import { pino } from "pino";

import type { Snapshot } from "../../../src/raft/core/types.js";
import { crc32c } from "../../../src/raft/wal/crc32c.js";
import {
  checksumSliceBytes,
  encodeSnapshotFile,
  snapshotFileName,
  Snapshotter,
  snapshotsKeptMax,
} from "../../../src/raft/snap/snapshotter.js";

const logger = pino({ level: "silent" });

function snapshot(index: number, term: number): Snapshot {
  return {
    metadata: { index, term, confState: { voters: [1, 2, 3], learners: [4] } },
    data: Buffer.from(`state at ${index}`),
  };
}

async function tempDir(t: { after: (fn: () => Promise<void>) => void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "shoal-snap-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test("an empty directory has no snapshot", async (t) => {
  const snapshotter = new Snapshotter({ dir: await tempDir(t), logger });
  assert.deepEqual(await snapshotter.loadNewest(), { snapshot: null, skipped: [] });
});

test("the newest saved snapshot loads back byte for byte; old ones are pruned", async (t) => {
  const dir = await tempDir(t);
  const snapshotter = new Snapshotter({ dir, logger });
  for (const index of [10, 20, 30, 40]) await snapshotter.save(snapshot(index, 2));
  const { snapshot: loaded, skipped } = await snapshotter.loadNewest();
  assert.deepEqual(skipped, []);
  assert.ok(loaded !== null);
  assert.deepEqual(loaded.metadata, snapshot(40, 2).metadata);
  assert.equal(Buffer.from(loaded.data).toString(), "state at 40");
  const files = (await readdir(dir)).sort();
  assert.equal(files.length, snapshotsKeptMax);
  assert.deepEqual(files, [snapshotFileName(2, 30), snapshotFileName(2, 40)]);
});

/** Bytes that differ from slice to slice, so a slice checksummed twice or skipped would show. */
function patterned(bytes: number): Buffer {
  const data = Buffer.allocUnsafe(bytes);
  for (let offset = 0; offset < bytes; offset += 1) data[offset] = (offset * 31 + (offset >>> 13)) & 0xff;
  return data;
}

test("a snapshot of several checksum slices loads back byte for byte", async (t) => {
  const dir = await tempDir(t);
  const snapshotter = new Snapshotter({ dir, logger });
  // Not a whole number of slices, so the last one is partial.
  const data = patterned(3 * checksumSliceBytes + 12_345);
  await snapshotter.save({ metadata: snapshot(50, 3).metadata, data });
  const { snapshot: loaded, skipped } = await snapshotter.loadNewest();
  assert.deepEqual(skipped, []);
  assert.ok(loaded !== null && Buffer.from(loaded.data).equals(data), "the sliced checksum matches the loader's one-pass one");
});

test("a large snapshot's checksum lets the event loop turn between slices", async () => {
  const slices = 8;
  let turns = 0;
  let encoded = false;
  const encoding = encodeSnapshotFile({ metadata: snapshot(1, 1).metadata, data: patterned(slices * checksumSliceBytes) }).then(
    (parts) => {
      encoded = true;
      return parts;
    },
  );
  const countTurns = (): void => {
    if (encoded) return;
    turns += 1;
    setImmediate(countTurns);
  };
  setImmediate(countTurns);
  const parts = await encoding;
  assert.ok(turns >= slices - 1, `the loop turned ${turns} times while ${slices} slices were checksummed`);
  assert.equal(parts.at(-1)?.length, slices * checksumSliceBytes, "the data is written as it is, not copied into one buffer");
});

test("a format 1 snapshot file (magic SHOALSNP, CRC-32C) still loads, and fails its checksum when damaged", async (t) => {
  const dir = await tempDir(t);
  const saved = snapshot(30, 2);
  const [header, ...body] = await encodeSnapshotFile(saved);
  assert.equal(Buffer.from(header ?? []).subarray(0, 8).toString("latin1"), "SHOALSN2", "format 2 is what is written");
  const bodyBytes = Buffer.concat(body);
  const formatOne = Buffer.concat([Buffer.from("SHOALSNP", "latin1"), Buffer.alloc(8), bodyBytes]);
  formatOne.writeUInt32LE(crc32c(bodyBytes), 8);
  formatOne.writeUInt32LE(bodyBytes.length, 12);
  const file = join(dir, snapshotFileName(2, 30));
  await writeFile(file, formatOne);
  const snapshotter = new Snapshotter({ dir, logger });
  const { snapshot: loaded, skipped } = await snapshotter.loadNewest();
  assert.deepEqual(skipped, []);
  assert.deepEqual(loaded?.metadata, saved.metadata);
  assert.equal(Buffer.from(loaded?.data ?? []).toString(), "state at 30");
  formatOne[formatOne.length - 1] = (formatOne[formatOne.length - 1] ?? 0) ^ 0x10;
  await writeFile(file, formatOne);
  assert.deepEqual((await snapshotter.loadNewest()).skipped, [{ file: snapshotFileName(2, 30), problem: "checksum mismatch" }]);
});

test("a corrupt newest snapshot is skipped and reported; the previous one loads", async (t) => {
  const dir = await tempDir(t);
  const snapshotter = new Snapshotter({ dir, logger });
  await snapshotter.save(snapshot(10, 1));
  await snapshotter.save(snapshot(20, 1));
  const newest = join(dir, snapshotFileName(1, 20));
  const bytes = await readFile(newest);
  bytes[bytes.length - 3] = (bytes[bytes.length - 3] ?? 0) ^ 0x01;
  await writeFile(newest, bytes);
  const { snapshot: loaded, skipped } = await snapshotter.loadNewest();
  assert.equal(loaded?.metadata.index, 10);
  assert.deepEqual(skipped, [{ file: snapshotFileName(1, 20), problem: "checksum mismatch" }]);
});

test("a truncated snapshot file is skipped", async (t) => {
  const dir = await tempDir(t);
  const snapshotter = new Snapshotter({ dir, logger });
  await snapshotter.save(snapshot(10, 1));
  const file = join(dir, snapshotFileName(1, 10));
  const bytes = await readFile(file);
  await writeFile(file, bytes.subarray(0, bytes.length - 1));
  const { snapshot: loaded, skipped } = await snapshotter.loadNewest();
  assert.equal(loaded, null);
  assert.equal(skipped.length, 1);
  assert.match(skipped[0]?.problem ?? "", /length/);
});
