import assert from "node:assert/strict";
import { test } from "node:test";

import { pino } from "pino";

import { InvalidArgumentError } from "../../../src/common/errors.js";
import { InvariantError } from "../../../src/raft/core/invariant.js";
import { newMessage } from "../../../src/raft/core/message.js";
import { ProposalDroppedError } from "../../../src/raft/core/raft.js";
import { RawNode } from "../../../src/raft/core/raw-node.js";
import type { Ready } from "../../../src/raft/core/types.js";
import { MemoryLogStorage } from "../../../src/raft/storage/memory-storage.js";
import { seededRandom } from "./helpers.js";

function newRawNode(id: number, voters: number[], storage = new MemoryLogStorage(), applied = 0): RawNode {
  if (storage.initialState().confState.voters.length === 0) storage.setConfState({ voters, learners: [] });
  return new RawNode({
    id,
    storage,
    electionTicks: 10,
    heartbeatTicks: 1,
    random: seededRandom(id),
    preVote: true,
    checkQuorum: true,
    maxSizePerMsgBytes: 1024 * 1024,
    maxInflightMsgs: 256,
    applied,
  });
}

/** Persists, then acknowledges, every Ready: the driver's loop without a network. */
function drain(node: RawNode, storage: MemoryLogStorage): Ready[] {
  const readies: Ready[] = [];
  while (node.hasReady()) {
    const ready = node.ready();
    if (ready.snapshot !== null) storage.applySnapshot(ready.snapshot);
    storage.append(ready.entries);
    if (ready.hardState !== null) storage.setHardState(ready.hardState);
    node.advance(ready);
    readies.push(ready);
  }
  return readies;
}

test("a single-node cluster elects itself and commits a proposal through Ready", () => {
  const storage = new MemoryLogStorage();
  const node = newRawNode(1, [1], storage);
  node.campaign();
  drain(node, storage);
  assert.equal(node.status().softState.role, "leader");
  node.propose(new TextEncoder().encode("hello"));
  const readies = drain(node, storage);
  const committed = readies.flatMap((ready) => ready.committedEntries);
  assert.deepEqual(committed.map((entry) => new TextDecoder().decode(entry.data)), ["hello"]);
  assert.equal(node.status().applied, storage.lastIndex());
});

test("a vote answer comes in the same Ready as the hard state that records the vote", () => {
  const storage = new MemoryLogStorage();
  const node = newRawNode(2, [1, 2, 3], storage);
  node.step(newMessage({ type: "vote", from: 1, to: 2, term: 5, index: 0, logTerm: 0 }));
  const ready = node.ready();
  assert.deepEqual(ready.hardState, { term: 5, vote: 1, commit: 0 });
  assert.deepEqual(
    ready.messages.map((m) => [m.type, m.to, m.reject]),
    [["vote-resp", 1, false]],
  );
});

test("ready() cannot be called again before advance(), and hasReady() waits for it", () => {
  const storage = new MemoryLogStorage();
  const node = newRawNode(1, [1], storage);
  node.campaign();
  const ready = node.ready();
  assert.equal(node.hasReady(), false);
  assert.throws(() => node.ready(), InvariantError);
  assert.throws(() => node.advance(ready), InvariantError, "advance() before the entries are in storage");
  storage.append(ready.entries);
  node.advance(ready);
  // A single voter commits its no-op once it is on disk: the next Ready carries that commit.
  const commit = node.ready();
  assert.deepEqual(commit.entries, []);
  assert.deepEqual(commit.committedEntries.map((entry) => entry.index), ready.entries.map((entry) => entry.index));
  node.advance(commit);
  assert.equal(node.hasReady(), false);
  node.propose(new Uint8Array([1]));
  assert.equal(node.hasReady(), true);
});

test("step refuses local-only message types from the network", () => {
  const node = newRawNode(1, [1, 2, 3]);
  for (const type of ["hup", "beat", "unreachable", "snap-status", "check-quorum"] as const) {
    assert.throws(() => node.step(newMessage({ type, from: 2, to: 1 })), InvalidArgumentError);
  }
});

test("answers from unknown members are dropped", () => {
  const storage = new MemoryLogStorage();
  const node = newRawNode(1, [1], storage);
  node.campaign();
  drain(node, storage);
  const before = node.status().hardState;
  node.step(newMessage({ type: "app-resp", from: 9, to: 1, term: 50, index: 1 }));
  assert.deepEqual(node.status().hardState, before);
});

test("proposals and reads without a leader throw ProposalDroppedError", () => {
  const node = newRawNode(1, [1, 2, 3]);
  assert.throws(() => node.propose(new Uint8Array([1])), ProposalDroppedError);
  assert.throws(() => node.readIndex(new Uint8Array([1])), ProposalDroppedError);
});

test("a node restarts from storage with its term, vote, commit and applied index", () => {
  const storage = new MemoryLogStorage();
  const first = newRawNode(1, [1], storage);
  first.campaign();
  drain(first, storage);
  first.propose(new TextEncoder().encode("x"));
  drain(first, storage);
  const before = first.status();
  const restarted = newRawNode(1, [1], storage, before.applied);
  const after = restarted.status();
  assert.deepEqual(after.hardState, before.hardState);
  assert.equal(after.applied, before.applied);
  assert.equal(restarted.hasReady(), false, "nothing is applied twice");
});

test("regression: a restart whose hard state was torn off after a snapshot uses the snapshot as commit", () => {
  // Found by the simulator (3-node seed 92): a crash persisted a received snapshot at 26
  // but lost the hard state record after it, leaving commit 0 below the snapshot.
  const storage = new MemoryLogStorage();
  storage.applySnapshot({ metadata: { index: 26, term: 3, confState: { voters: [1, 2, 3], learners: [] } }, data: new Uint8Array(0) });
  storage.setHardState({ term: 2, vote: 0, commit: 0 });
  const node = newRawNode(1, [1, 2, 3], storage, 26);
  assert.equal(node.status().hardState.commit, 26);
});

test("the leader reports each member's progress in status()", () => {
  const storage = new MemoryLogStorage();
  const node = newRawNode(1, [1], storage);
  node.campaign();
  drain(node, storage);
  const progress = node.status().progress;
  assert.ok(progress !== null);
  assert.equal(progress.get(1)?.match, storage.lastIndex());
  assert.equal(newRawNode(2, [1, 2]).status().progress, null);
});

test("applyConfChange returns the configuration including removed ids", () => {
  const storage = new MemoryLogStorage();
  const node = newRawNode(1, [1, 2, 3], storage);
  const afterAdd = node.applyConfChange({ type: "add-learner", nodeId: 4, context: new Uint8Array(0) });
  assert.deepEqual(afterAdd, { voters: [1, 2, 3], learners: [4], removed: [] });
  const afterRemove = node.applyConfChange({ type: "remove-node", nodeId: 2, context: new Uint8Array(0) });
  assert.deepEqual(afterRemove, { voters: [1, 3], learners: [4], removed: [2] });
});

test("add-learner on a voter demotes it; the last voter is neither demoted nor removed", () => {
  const node = newRawNode(1, [1, 2, 3], new MemoryLogStorage());
  const learner = { type: "add-learner" as const, context: new Uint8Array(0) };
  assert.deepEqual(node.applyConfChange({ ...learner, nodeId: 2 }), { voters: [1, 3], learners: [2], removed: [] });
  assert.deepEqual(node.applyConfChange({ ...learner, nodeId: 3 }), { voters: [1], learners: [2, 3], removed: [] });
  assert.deepEqual(node.applyConfChange({ ...learner, nodeId: 1 }), { voters: [1], learners: [2, 3], removed: [] });
  const removeLast = node.applyConfChange({ type: "remove-node", nodeId: 1, context: new Uint8Array(0) });
  assert.deepEqual(removeLast, { voters: [1], learners: [2, 3], removed: [] });
  assert.deepEqual(node.applyConfChange({ type: "add-voter", nodeId: 2, context: new Uint8Array(0) }), {
    voters: [1, 2],
    learners: [3],
    removed: [],
  });
});

test("a leader refuses to propose the demotion of the last voter", () => {
  const storage = new MemoryLogStorage();
  const node = newRawNode(1, [1], storage);
  node.campaign();
  drain(node, storage);
  assert.throws(
    () => node.proposeConfChange({ type: "add-learner", nodeId: 1, context: new Uint8Array(0) }),
    (error: unknown) => error instanceof ProposalDroppedError && /last voter/.test(error.message),
  );
});

test("a pino logger fits RaftLogger and receives the core's role changes", () => {
  const lines: string[] = [];
  const destination = { write: (line: string): void => void lines.push(line) };
  const logger = pino({ level: "debug" }, destination).child({ component: "raft" });
  const storage = new MemoryLogStorage();
  storage.setConfState({ voters: [1], learners: [] });
  const node = new RawNode({
    id: 1,
    storage,
    electionTicks: 10,
    heartbeatTicks: 1,
    random: seededRandom(1),
    preVote: false,
    checkQuorum: false,
    maxSizePerMsgBytes: 1024,
    maxInflightMsgs: 8,
    applied: 0,
    logger,
  });
  node.campaign();
  assert.ok(lines.some((line) => line.includes('"msg":"became leader"') && line.includes('"component":"raft"')));
});

/** Node 1 of {1, 2, 3} elected through pre-vote and vote answers from node 2; everything persisted. */
function electedLeader(storage: MemoryLogStorage): RawNode {
  const node = newRawNode(1, [1, 2, 3], storage);
  node.campaign();
  drain(node, storage);
  node.step(newMessage({ type: "pre-vote-resp", from: 2, to: 1, term: 1 }));
  drain(node, storage);
  node.step(newMessage({ type: "vote-resp", from: 2, to: 1, term: 1 }));
  drain(node, storage);
  assert.equal(node.status().softState.role, "leader");
  // The leader's no-op (index 1) commits once the followers have it; both now replicate.
  node.step(newMessage({ type: "app-resp", from: 2, to: 1, term: 1, index: 1 }));
  node.step(newMessage({ type: "app-resp", from: 3, to: 1, term: 1, index: 1 }));
  drain(node, storage);
  assert.equal(node.status().hardState.commit, 1);
  return node;
}

test("a leader's appends leave before its own fsync, but its entries count toward commit only after advance()", () => {
  const storage = new MemoryLogStorage();
  const node = electedLeader(storage);
  node.proposeAll([Buffer.from("x"), Buffer.from("y")]);
  const ready = node.ready();
  assert.deepEqual(
    ready.entries.map((entry) => entry.index),
    [2, 3],
  );
  // One append per follower for the whole batch.
  assert.deepEqual(
    ready.messages.map((m) => [m.type, m.to, m.entries.length]),
    [
      ["app", 2, 2],
      ["app", 3, 2],
    ],
  );
  // While that Ready's fsync runs, a new proposal goes out at once.
  node.propose(Buffer.from("z"));
  const early = node.takeLeaderMessages();
  assert.deepEqual(
    early.map((m) => [m.type, m.to, m.entries.map((entry) => entry.index)]),
    [
      ["app", 2, [4]],
      ["app", 3, [4]],
    ],
  );
  assert.deepEqual(node.takeLeaderMessages(), [], "messages are handed out once");
  // Node 2 has everything durable, node 3 none of it, and the leader's own write is not
  // done: only one of three has indexes 2-4, so nothing new commits.
  node.step(newMessage({ type: "app-resp", from: 2, to: 1, term: 1, index: 4 }));
  assert.equal(node.status().hardState.commit, 1);
  // The leader's fsync of 2-3 completes: with node 2 that is a quorum for 2-3, not for 4.
  storage.append(ready.entries);
  node.advance(ready);
  assert.equal(node.status().hardState.commit, 3);
  drain(node, storage);
  assert.equal(node.status().hardState.commit, 4);
});

test("takeLeaderMessages hands nothing out on a follower: its answers wait for the Ready's fsync", () => {
  const storage = new MemoryLogStorage();
  const node = newRawNode(2, [1, 2, 3], storage);
  node.step(newMessage({ type: "vote", from: 1, to: 2, term: 5, index: 0, logTerm: 0 }));
  assert.deepEqual(node.takeLeaderMessages(), []);
  assert.deepEqual(
    node.ready().messages.map((m) => m.type),
    ["vote-resp"],
  );
});

test("entries that commit while a Ready is outstanding are handed out once, stopping before a conf change", () => {
  const storage = new MemoryLogStorage();
  const node = electedLeader(storage);
  assert.deepEqual(node.takeCommittedEntries(), [], "nothing outstanding");
  node.propose(Buffer.from("a"));
  node.proposeConfChange({ type: "add-learner", nodeId: 4, context: new Uint8Array(0) });
  node.propose(Buffer.from("b"));
  const ready = node.ready();
  assert.deepEqual(
    ready.entries.map((entry) => entry.index),
    [2, 3, 4],
  );
  // Both followers persist everything while the leader's own fsync runs: 2-4 commit.
  node.step(newMessage({ type: "app-resp", from: 2, to: 1, term: 1, index: 4 }));
  node.step(newMessage({ type: "app-resp", from: 3, to: 1, term: 1, index: 4 }));
  assert.equal(node.status().hardState.commit, 4);
  assert.deepEqual(
    node.takeCommittedEntries().map((entry) => entry.index),
    [2],
    "the conf change at 3 waits for a Ready",
  );
  assert.deepEqual(node.takeCommittedEntries(), []);
  storage.append(ready.entries);
  node.advance(ready);
  const next = node.ready();
  assert.deepEqual(
    next.committedEntries.map((entry) => entry.index),
    [3, 4],
    "entry 2 is not handed out again",
  );
});
