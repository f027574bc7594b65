import assert from "node:assert/strict";
import { test } from "node:test";

import { InvalidArgumentError } from "../../../src/common/errors.js";
import { decodeConfChange, encodeConfChange } from "../../../src/raft/core/conf-change.js";
import { limitEntriesSize } from "../../../src/raft/core/entry-size.js";
import { RaftLog } from "../../../src/raft/core/log.js";
import { Inflights, Progress, ProgressTracker } from "../../../src/raft/core/progress.js";
import { majorityCommittedIndex, majorityVoteResult } from "../../../src/raft/core/quorum.js";
import { MemoryLogStorage } from "../../../src/raft/storage/memory-storage.js";
import { entry, message, newTestRaft, readMessages, storageWithTerms } from "./helpers.js";

test("conf changes round-trip, including ids above 2^32", () => {
  for (const nodeId of [1, 7, 2 ** 32 + 5, Number.MAX_SAFE_INTEGER]) {
    const change = { type: "add-learner" as const, nodeId, context: new TextEncoder().encode("10.0.0.1:4242") };
    assert.deepEqual(decodeConfChange(encodeConfChange(change)), change);
  }
});

test("malformed conf change data is rejected with InvalidArgumentError", () => {
  const valid = encodeConfChange({ type: "remove-node", nodeId: 3, context: new Uint8Array(2) });
  assert.throws(() => decodeConfChange(valid.slice(0, 5)), InvalidArgumentError);
  assert.throws(() => decodeConfChange(valid.slice(0, valid.length - 1)), InvalidArgumentError);
  const badVersion = valid.slice();
  badVersion[0] = 9;
  assert.throws(() => decodeConfChange(badVersion), InvalidArgumentError);
  const badType = valid.slice();
  badType[1] = 77;
  assert.throws(() => decodeConfChange(badType), InvalidArgumentError);
  assert.throws(() => encodeConfChange({ type: "add-voter", nodeId: 0, context: new Uint8Array(0) }), InvalidArgumentError);
});

test("quorum: the committed index is the majority's lowest match", () => {
  const matches = new Map([[1, 10], [2, 7], [3, 3]]);
  assert.equal(majorityCommittedIndex([1, 2, 3], (id) => matches.get(id) ?? 0), 7);
  assert.equal(majorityCommittedIndex([1, 2, 3, 4], (id) => matches.get(id) ?? 0), 3);
  assert.equal(majorityCommittedIndex([], () => 5), 0);
});

test("quorum: the pairwise count agrees with sorting, duplicates and zeros included", () => {
  let seed = 7;
  const next = (bound: number): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % bound;
  };
  for (let round = 0; round < 2_000; round += 1) {
    const voters = Array.from({ length: 1 + next(7) }, (_, i) => i + 1);
    const matches = new Map(voters.map((id) => [id, next(6)]));
    const sorted = voters.map((id) => matches.get(id) ?? 0).sort((a, b) => b - a);
    const expected = sorted[Math.floor(voters.length / 2)] ?? 0;
    assert.equal(majorityCommittedIndex(voters, (id) => matches.get(id) ?? 0), expected, `matches ${sorted.join(",")}`);
  }
});

test("progress tracker: ids() follows members removed and added, even at the same count", () => {
  const tracker = new ProgressTracker(4);
  for (const id of [3, 1, 2]) tracker.progress.set(id, new Progress({ next: 1, inflightsMax: 4, isLearner: false }));
  assert.deepEqual(tracker.ids(), [1, 2, 3]);
  assert.equal(tracker.ids(), tracker.ids(), "an unchanged membership reuses the sorted list");
  tracker.progress.delete(2);
  tracker.progress.set(7, new Progress({ next: 1, inflightsMax: 4, isLearner: false }));
  assert.deepEqual(tracker.ids(), [1, 3, 7]);
  tracker.progress.delete(1);
  assert.deepEqual(tracker.ids(), [3, 7]);
});

test("quorum: votes are won, lost or pending", () => {
  assert.equal(majorityVoteResult([1, 2, 3], new Map([[1, true], [2, true]])), "won");
  assert.equal(majorityVoteResult([1, 2, 3], new Map([[1, true], [2, false]])), "pending");
  assert.equal(majorityVoteResult([1, 2, 3], new Map([[2, false], [3, false]])), "lost");
});

test("inflights: the window fills, frees up to an index, and refuses overflow", () => {
  const inflights = new Inflights(3);
  inflights.add(5);
  inflights.add(7);
  inflights.add(9);
  assert.equal(inflights.full(), true);
  assert.throws(() => inflights.add(11));
  inflights.freeLE(7);
  assert.equal(inflights.count(), 1);
  inflights.freeFirstOne();
  assert.equal(inflights.count(), 0);
});

test("progress: stale rejections are ignored, and probing backs off to the hint", () => {
  const progress = new Progress({ next: 11, inflightsMax: 4, isLearner: false });
  assert.equal(progress.maybeDecreaseTo(5, 4), false, "not an answer to our last probe (next - 1 = 10)");
  assert.equal(progress.maybeDecreaseTo(10, 4), true);
  assert.equal(progress.next, 5);
  progress.maybeUpdate(6);
  progress.becomeReplicate();
  assert.equal(progress.maybeDecreaseTo(6, 2), false, "a rejection at or below match is stale");
  assert.equal(progress.maybeDecreaseTo(8, 2), true);
  assert.equal(progress.next, 7);
});

test("log: entries move from unstable to stable only with a matching term", () => {
  const storage = new MemoryLogStorage();
  const log = new RaftLog(storage);
  log.append([entry(1, 1), entry(1, 2)]);
  log.stableTo(2, 9);
  assert.equal(log.unstableEntries().length, 2, "a term mismatch means the entry was replaced");
  storage.append(log.unstableEntries());
  log.stableTo(2, 1);
  assert.equal(log.unstableEntries().length, 0);
  assert.equal(log.lastIndex(), 2);
});

test("log: findConflictByTerm skips back over a whole term", () => {
  const log = new RaftLog(storageWithTerms([1, 1, 2, 2, 2, 5, 5], [1]));
  assert.equal(log.findConflictByTerm(7, 3), 5);
  assert.equal(log.findConflictByTerm(7, 1), 2);
  assert.equal(log.findConflictByTerm(7, 6), 7);
  assert.equal(log.findConflictByTerm(9, 1), 9, "beyond the log: nothing to skip");
});

test("limitEntriesSize keeps at least one entry", () => {
  const big = [entry(1, 1, "x".repeat(500)), entry(1, 2, "y")];
  assert.equal(limitEntriesSize(big, 10).length, 1);
  assert.equal(limitEntriesSize(big, 10_000).length, 2);
});

test("regression: a joining member installs a snapshot that predates its addition", () => {
  // Found by the simulator (3-node seed 12): a learner whose leader's latest snapshot was
  // taken before the learner's add-learner entry applied refused it forever, never caught up.
  const raft = newTestRaft(6, []);
  raft.becomeFollower(3, 1);
  const snapshot = { metadata: { index: 30, term: 3, confState: { voters: [1, 2, 3], learners: [] } }, data: new Uint8Array(0) };
  raft.step(message({ type: "snap", from: 1, to: 6, term: 3, snapshot }));
  assert.equal(raft.log.committed, 30);
  assert.deepEqual(readMessages(raft).map((m) => [m.type, m.index]), [["app-resp", 30]]);
  assert.equal(raft.promotable(), false, "not a voter until the log says so");
});

test("a node removed by the snapshot's configuration refuses it", () => {
  const raft = newTestRaft(4, []);
  raft.becomeFollower(3, 1);
  const snapshot = { metadata: { index: 30, term: 3, confState: { voters: [1, 2, 3], learners: [], removed: [4] } }, data: new Uint8Array(0) };
  raft.step(message({ type: "snap", from: 1, to: 4, term: 3, snapshot }));
  assert.equal(raft.log.committed, 0);
});
