import assert from "node:assert/strict";
import { cp, mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import type { TestContext } from "node:test";

import { DiskLogStorage } from "../../../src/raft/wal/disk-storage.js";
import { seededRandom } from "../core/helpers.js";
import { settlesWithin, startGatedCluster, TestCluster, testLogger, waitFor } from "./cluster.js";
import { GatedSnapshotSync } from "./gated-snapshot-sync.js";

/**
 * What a restart would find in `dataDir` now: a copy opened as a crashed node's disk; null
 * when a file vanished mid-copy (compaction releasing it), as a crash image is atomic and a
 * copy is not. The WAL is copied before the snapshots: segments are released only behind a
 * durable snapshot, so the snapshots copied after them always cover what is missing.
 */
async function openCopy(t: TestContext, dataDir: string): Promise<DiskLogStorage | null> {
  const copy = await mkdtemp(join(tmpdir(), "shoal-raft-crash-"));
  t.after(() => rm(copy, { recursive: true, force: true }));
  try {
    await cp(join(dataDir, "wal"), join(copy, "wal"), { recursive: true });
    await cp(join(dataDir, "snap"), join(copy, "snap"), { recursive: true });
  } catch (error) {
    if (error instanceof Error && "code" in error && error.code === "ENOENT") return null;
    throw error;
  }
  const storage = await DiskLogStorage.open({ dir: copy, logger: testLogger });
  t.after(() => storage.close());
  return storage;
}

/** Crash copies taken until one satisfies `predicate` (null when none did within the deadline). */
async function crashCopyWhere(
  t: TestContext,
  dataDir: string,
  predicate: (storage: DiskLogStorage) => boolean,
  deadlineMs = 2_000,
  before: () => Promise<boolean> = () => Promise.resolve(true),
): Promise<DiskLogStorage | null> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    // `before` is checked first: the copy must be taken after what it looks for on disk.
    if (await before()) {
      const storage = await openCopy(t, dataDir);
      if (storage !== null && predicate(storage)) return storage;
    }
    if (Date.now() > deadline) return null;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function walSegments(dataDir: string): Promise<string[]> {
  return (await readdir(join(dataDir, "wal"))).filter((file) => file.endsWith(".wal")).sort();
}

test("a snapshot's slow file write holds up no Ready, and the log is compacted only once the file is durable", async (t) => {
  // Small segments, so that compaction has whole segments to release.
  const { cluster, gates } = await startGatedCluster(t, { snapshotEveryEntries: 20, segmentBytesTarget: 256 }, () => new GatedSnapshotSync(), (openerOf) => ({
    snapshotOpenFile: openerOf,
  }));
  const leader = await cluster.leader();
  const gate = gates.get(leader.id);
  const node = leader.node;
  assert.ok(node !== null && gate !== undefined);
  const snapshotBefore = node.status().snapshotIndex;
  gate.close();
  const values = Array.from({ length: 40 }, (_, i) => `v${i}`);
  // One at a time: each needs Readies after the one that made the snapshot due.
  for (const value of values) await settlesWithin(`proposal ${value}`, node.propose(Buffer.from(value)));
  assert.equal(gate.held(), 1, "the snapshot's fsync is held");
  assert.equal(node.status().snapshotIndex, snapshotBefore, "a snapshot counts only once durable");
  const applied = node.status().applied;
  // The leader's Readies go on meanwhile: its WAL soon holds every entry it applied (some
  // may have been applied on the followers' acknowledgements before its own write).
  const during = await crashCopyWhere(t, leader.dataDir, (storage) => storage.lastIndex() >= applied);
  assert.ok(during !== null, `the leader's WAL stopped short of the ${applied} entries it applied: its Ready loop is held up`);
  // A crash now restarts from the older snapshot and the whole WAL: opening the copy
  // would fail had a segment been released with entries that snapshot does not cover.
  assert.equal(during.snapshot().metadata.index, snapshotBefore);
  assert.equal(during.firstIndex(), snapshotBefore + 1);
  const segmentsDuring = await walSegments(leader.dataDir);
  assert.ok(segmentsDuring.length > 2, `only ${segmentsDuring.length} WAL segments`);

  gate.openGate();
  const snapshotIndex = await waitFor("the snapshot to be durable", () => {
    const index = node.status().snapshotIndex;
    return index > snapshotBefore ? index : undefined;
  });
  assert.ok(snapshotIndex - snapshotBefore >= 20 && snapshotIndex <= applied);
  const released = await crashCopyWhere(t, leader.dataDir, (storage) => storage.snapshot().metadata.index >= snapshotIndex, 5_000, async () =>
    !(await walSegments(leader.dataDir)).includes(segmentsDuring[0] ?? ""));
  assert.ok(released !== null, "no crash copy showed the oldest WAL segment released behind the new snapshot");
  // A crash after compaction restarts from the new snapshot and what the WAL kept after it.
  assert.ok(released.lastIndex() >= applied);
  await settlesWithin("a proposal after the snapshot", node.propose(Buffer.from("after")));
  // A member restarted from this disk gets every value back, from snapshot plus WAL.
  await cluster.stopMember(leader.id);
  await cluster.startMember(leader.id, { bootstrap: true });
  await waitFor("the restarted member to recover", () => leader.machine.applied.length === values.length + 1);
  assert.deepEqual(leader.machine.applied, [...values, "after"]);
});

test("a leader's snapshot that arrives while a local one is being written waits for it", async (t) => {
  const { cluster, gates } = await startGatedCluster(t, { snapshotEveryEntries: 20 }, () => new GatedSnapshotSync(), (openerOf) => ({ snapshotOpenFile: openerOf }));
  const leader = await cluster.leader();
  const follower = cluster.otherThan(leader);
  const gate = gates.get(follower.id);
  assert.ok(leader.node && leader.transport && follower.node && gate);
  const node = leader.node;
  gate.close();
  const values = Array.from({ length: 90 }, (_, i) => `v${i}`);
  for (const value of values.slice(0, 25)) await node.propose(Buffer.from(value));
  await waitFor("the follower's own snapshot write to be held", () => gate.held() === 1);
  // Cut the leader's messages to the follower while the leader snapshots and compacts
  // past it: once they flow again, the follower needs the leader's snapshot.
  leader.transport.removePeer(follower.id);
  for (const value of values.slice(25)) await node.propose(Buffer.from(value));
  const leaderSnapshot = node.status().snapshotIndex;
  assert.ok(leaderSnapshot > 25, `the leader snapshotted at ${leaderSnapshot} only`);
  leader.transport.addPeer(follower.id, follower.address);
  // The follower's core takes the snapshot (its commit index jumps), but the driver must
  // not install it while its own snapshot is still being written. That it stays so can
  // only be watched over a window; without the wait it installs within milliseconds.
  await waitFor("the follower's core to take the leader's snapshot", () => (follower.node?.status().commit ?? 0) >= leaderSnapshot);
  const windowEnds = Date.now() + 300;
  while (Date.now() < windowEnds) {
    assert.ok(follower.node.status().applied < leaderSnapshot, "the leader's snapshot was installed beside the local one");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  assert.equal(gate.held(), 1, "only the local snapshot's file is being written");
  gate.openGate();
  await waitFor("the follower to catch up", () => follower.machine.applied.length === values.length);
  assert.deepEqual(follower.machine.applied, values);
  assert.deepEqual(cluster.fatalErrors, []);
  await cluster.stopMember(follower.id);
  await cluster.startMember(follower.id, { bootstrap: true });
  await waitFor("the restarted follower to recover", () => follower.machine.applied.length === values.length);
  assert.deepEqual(follower.machine.applied, values);
});

test("members draw their snapshot gaps from the spread, so that they do not snapshot at the same index", async (t) => {
  const every = 20;
  const spread = 10;
  // The draw for the gap is the only one over [0, spread]; elections keep a seeded source.
  const extra = new Map([
    [1, 0],
    [2, 5],
    [3, 10],
  ]);
  const cluster = await TestCluster.start(3, {
    snapshotEveryEntries: every,
    snapshotSpreadEntries: spread,
    random: (id) => {
      const seeded = seededRandom(id);
      return (bound) => (bound === spread + 1 ? (extra.get(id) ?? 0) : seeded(bound));
    },
  });
  t.after(() => cluster.close());
  const leader = await cluster.leader();
  assert.ok(leader.node);
  // Past the largest first gap (30), short of the smallest second one (40).
  for (let i = 0; i < 33; i += 1) await leader.node.propose(Buffer.from(`v${i}`));
  const applied = leader.node.status().applied;
  await waitFor("every member to apply the writes", () => cluster.members.every((member) => (member.node?.status().applied ?? 0) >= applied));
  for (const member of cluster.members) {
    const gap = every + (extra.get(member.id) ?? 0);
    const snapshotIndex = member.node?.status().snapshotIndex ?? 0;
    // At the first apply that reaches the gap: a member may apply a few entries at once.
    assert.ok(snapshotIndex >= gap && snapshotIndex <= gap + 3, `member ${member.id} snapshotted at ${snapshotIndex}, its gap is ${gap}`);
  }
});
