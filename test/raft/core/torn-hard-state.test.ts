// A node restarting with a hard state older than its log: a torn write kept the entries or
// the snapshot (written first) and lost the hard state a fresh joiner wrote with them.
import assert from "node:assert/strict";
import { test } from "node:test";

import { MemoryLogStorage } from "../../../src/raft/storage/memory-storage.js";
import { entry, message, newTestRaft, readMessages } from "./helpers.js";

test("a node whose hard state was torn off its log starts at its last log term and can reject a pre-vote", () => {
  const storage = new MemoryLogStorage();
  storage.append([entry(3, 1), entry(3, 2)]);
  storage.setConfState({ voters: [1, 2, 3], learners: [] });
  const raft = newTestRaft(1, [1, 2, 3], { storage, preVote: true });
  assert.equal(raft.term, 3);
  assert.equal(raft.vote, 0);
  // Node 2's log ends in term 2, behind ours: the pre-vote is rejected, with our term.
  raft.step(message({ type: "pre-vote", from: 2, to: 1, term: 3, index: 5, logTerm: 2 }));
  const [answer, ...rest] = readMessages(raft);
  assert.equal(rest.length, 0);
  assert.equal(answer?.type, "pre-vote-resp");
  assert.equal(answer.reject, true);
  assert.equal(answer.term, 3);
});

test("a joiner whose first snapshot survived a torn write starts at the snapshot's term", () => {
  const storage = new MemoryLogStorage();
  storage.applySnapshot({ metadata: { index: 7, term: 5, confState: { voters: [1, 2, 3], learners: [] } }, data: new Uint8Array(0) });
  const raft = newTestRaft(3, [1, 2, 3], { storage, applied: 7 });
  assert.equal(raft.term, 5);
  assert.equal(raft.log.committed, 7);
});

test("a single voter whose hard state was torn off campaigns above its last log term", () => {
  // At term 0 it would lead term 1 and append its no-op of term 1 after entries of term 3:
  // log terms must never decrease along the log (§5.3, Log Matching).
  const storage = new MemoryLogStorage();
  storage.append([entry(3, 1), entry(3, 2)]);
  storage.setConfState({ voters: [1], learners: [] });
  const raft = newTestRaft(1, [1], { storage });
  raft.step(message({ type: "hup", from: 1, to: 1 }));
  assert.equal(raft.state, "leader");
  assert.equal(raft.term, 4);
  assert.equal(raft.log.lastTerm(), 4);
});

test("a hard state at or above the last log term keeps its vote", () => {
  const storage = new MemoryLogStorage();
  storage.append([entry(3, 1)]);
  storage.setHardState({ term: 3, vote: 2, commit: 1 });
  storage.setConfState({ voters: [1, 2, 3], learners: [] });
  const raft = newTestRaft(1, [1, 2, 3], { storage });
  assert.equal(raft.term, 3);
  assert.equal(raft.vote, 2);
});
