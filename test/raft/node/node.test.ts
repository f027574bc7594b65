import assert from "node:assert/strict";
import diagnosticsChannel from "node:diagnostics_channel";
import { test } from "node:test";
import type { TestContext } from "node:test";

import { UnavailableError } from "../../../src/common/errors.js";
import { leaderChangedChannel } from "../../../src/raft/node.js";
import type { LeaderChange, RaftNode } from "../../../src/raft/node.js";
import { isNotLeader, startGatedCluster, TestCluster, waitFor } from "./cluster.js";
import type { TestClusterOptions, TestMember } from "./cluster.js";
import { GatedFsync } from "./gated-fsync.js";

test("three nodes elect a leader and every node applies proposals in the same order", async (t) => {
  const cluster = await TestCluster.start(3);
  t.after(() => cluster.close());
  const leader = await cluster.leader();
  const node = leader.node;
  assert.ok(node !== null);
  const values = Array.from({ length: 200 }, (_, i) => `value-${i}`);
  // Proposed in one event-loop turn: they share Readies (and fsyncs), and apply in order.
  const positions = await Promise.all(values.map((value) => node.propose(Buffer.from(value))));
  const indexes = positions.map((position) => position.index);
  assert.deepEqual(indexes, [...indexes].sort((a, b) => a - b));
  assert.equal(new Set(indexes).size, values.length);
  // Resolved means applied on the leader already.
  assert.deepEqual(leader.machine.applied, values);
  for (const member of cluster.members) {
    await waitFor(`member ${member.id} applies all`, () => member.machine.applied.length === values.length);
    assert.deepEqual(member.machine.applied, values);
  }
});

test("a proposal on a follower is refused with the leader's id", async (t) => {
  const cluster = await TestCluster.start(3);
  t.after(() => cluster.close());
  const leader = await cluster.leader();
  const follower = cluster.otherThan(leader);
  assert.ok(follower.node);
  await assert.rejects(follower.node.propose(Buffer.from("x")), isNotLeader(leader.id));
});

test("closing the leader elects a new one that keeps every applied entry", async (t) => {
  const cluster = await TestCluster.start(3);
  t.after(() => cluster.close());
  const changes: LeaderChange[] = [];
  const onChange = (message: unknown): void => {
    changes.push(message as LeaderChange);
  };
  diagnosticsChannel.subscribe(leaderChangedChannel.name, onChange);
  t.after(() => diagnosticsChannel.unsubscribe(leaderChangedChannel.name, onChange));
  const first = await cluster.leader();
  await first.node?.propose(Buffer.from("before"));
  await cluster.stopMember(first.id);
  const second = await cluster.leader();
  assert.notEqual(second.id, first.id);
  assert.ok(changes.some((change) => change.nodeId === second.id && change.role === "leader"));
  await second.node?.propose(Buffer.from("after"));
  for (const member of cluster.running()) {
    await waitFor(`member ${member.id} applies both`, () => member.machine.applied.length === 2);
    assert.deepEqual(member.machine.applied, ["before", "after"]);
  }
  // The old leader restarts from its WAL and catches up.
  await cluster.startMember(first.id, { bootstrap: true });
  await waitFor("restarted member catches up", () => first.machine.applied.length === 2);
  assert.deepEqual(first.machine.applied, ["before", "after"]);
});

test("pending proposals are rejected when the leader closes", async (t) => {
  const cluster = await TestCluster.start(3);
  t.after(() => cluster.close());
  const leader = await cluster.leader();
  const node = leader.node;
  assert.ok(node !== null);
  // Closed in the same event-loop turn: the proposal never reaches the WAL, so it must fail.
  const pending = node.propose(Buffer.from("in flight"));
  const closing = cluster.stopMember(leader.id);
  await assert.rejects(pending, UnavailableError);
  await closing;
  await assert.rejects(node.propose(Buffer.from("after close")), UnavailableError);
  assert.ok(!leader.machine.applied.includes("in flight"));
});

test("readIndex on a follower waits for the leader's commit index", async (t) => {
  const cluster = await TestCluster.start(3);
  t.after(() => cluster.close());
  const leader = await cluster.leader();
  const follower = cluster.otherThan(leader);
  assert.ok(follower.node && leader.node);
  const { index } = await leader.node.propose(Buffer.from("read me"));
  const readIndex = await follower.node.readIndex();
  assert.ok(readIndex >= index, `read index ${readIndex} below the write's ${index}`);
  assert.ok(follower.machine.applied.includes("read me"));
});

test("snapshots compact the log and a restarted member recovers from snapshot plus WAL", async (t) => {
  const cluster = await TestCluster.start(3, { snapshotEveryEntries: 20 });
  t.after(() => cluster.close());
  const leader = await cluster.leader();
  const follower = cluster.otherThan(leader);
  assert.ok(leader.node);
  await cluster.stopMember(follower.id);
  const values = Array.from({ length: 100 }, (_, i) => `v${i}`);
  for (const value of values) await leader.node.propose(Buffer.from(value));
  // The follower missed entries that were compacted away: it must catch up by snapshot.
  await cluster.startMember(follower.id, { bootstrap: true });
  await waitFor("follower catches up", () => follower.machine.applied.length === values.length);
  assert.deepEqual(follower.machine.applied, values);
  await cluster.stopMember(leader.id);
  await cluster.startMember(leader.id, { bootstrap: true });
  await waitFor("old leader recovers", () => leader.machine.applied.length === values.length, 10_000);
  assert.deepEqual(leader.machine.applied, values);
});

/** A 3-member cluster whose members take a snapshot every 20 entries, with one follower stopped. */
async function clusterWithFollowerStopped(
  t: TestContext,
  options: TestClusterOptions,
): Promise<{ cluster: TestCluster; leader: TestMember; follower: TestMember; node: RaftNode }> {
  const cluster = await TestCluster.start(3, { snapshotEveryEntries: 20, ...options });
  t.after(() => cluster.close());
  const leader = await cluster.leader();
  const follower = cluster.otherThan(leader);
  assert.ok(leader.node !== null);
  await cluster.stopMember(follower.id);
  return { cluster, leader, follower, node: leader.node };
}

test("a snapshot whose bytes come after later applies is recorded at the index it was taken at", async (t) => {
  const { cluster, leader, follower, node } = await clusterWithFollowerStopped(t, { deferSnapshotBytes: true });
  const values = Array.from({ length: 120 }, (_, i) => `v${i}`);
  // Proposals keep coming while each snapshot's bytes are awaited, so entries are applied
  // between the snapshot's index and its bytes.
  for (let first = 0; first < values.length; first += 6) {
    await Promise.all(values.slice(first, first + 6).map((value) => node.propose(Buffer.from(value))));
  }
  assert.ok(node.status().snapshotIndex > 20, "the leader took snapshots");
  await cluster.startMember(follower.id, { bootstrap: true });
  await waitFor("follower catches up by snapshot", () => follower.machine.applied.length >= values.length);
  assert.deepEqual(follower.machine.applied, values);
  await cluster.stopMember(leader.id);
  await cluster.startMember(leader.id, { bootstrap: true });
  await waitFor("old leader recovers from its snapshot and WAL", () => leader.machine.applied.length >= values.length);
  assert.deepEqual(leader.machine.applied, values);
});

test("entries after a snapshot are applied only once the state machine has finished restoring it", async (t) => {
  const { cluster, leader, follower, node } = await clusterWithFollowerStopped(t, { deferRestore: true });
  const values = Array.from({ length: 60 }, (_, i) => `v${i}`);
  for (const value of values) await node.propose(Buffer.from(value));
  await cluster.startMember(follower.id, { bootstrap: true });
  // Proposals keep coming while the follower restores, so entries commit behind the
  // snapshot before its restore ends. Applying one early fails the member (see
  // RecordingStateMachine), and the restore's end would overwrite it.
  const later = Array.from({ length: 30 }, (_, i) => `w${i}`);
  for (const value of later) await node.propose(Buffer.from(value));
  await waitFor("follower catches up by snapshot", () => follower.machine.applied.length >= values.length + later.length);
  assert.deepEqual(follower.machine.applied, [...values, ...later]);
  assert.ok((follower.node?.status().snapshotIndex ?? 0) > 0, "the follower caught up from a snapshot");
  await cluster.stopMember(leader.id);
  await cluster.startMember(leader.id, { bootstrap: true });
  await waitFor("old leader recovers from its snapshot and WAL", () => leader.machine.applied.length >= values.length + later.length);
  assert.deepEqual(leader.machine.applied, [...values, ...later]);
});

test("proposals made in one event-loop turn share fsyncs (group commit)", async (t) => {
  const cluster = await TestCluster.start(3);
  t.after(() => cluster.close());
  const leader = await cluster.leader();
  const node = leader.node;
  assert.ok(node !== null);
  // With both followers up, entries can commit on their two acknowledgements before the
  // leader's own fsync ends, and the count would be read too early. With one, every
  // proposal resolves only after the leader's fsync of its entry is done and counted.
  await cluster.stopMember(cluster.otherThan(leader).id);
  await node.propose(Buffer.from("warm up"));
  const before = node.status().walSyncs;
  await Promise.all(Array.from({ length: 500 }, (_, i) => node.propose(Buffer.from(`p${i}`))));
  const syncs = node.status().walSyncs - before;
  assert.ok(syncs >= 1 && syncs <= 5, `500 proposals took ${syncs} leader fsyncs`);
});

test("proposals made in one event-loop turn reach each follower as one append, not one per proposal", async (t) => {
  const cluster = await TestCluster.start(3);
  t.after(() => cluster.close());
  const leader = await cluster.leader();
  const node = leader.node;
  const transport = leader.transport;
  assert.ok(node !== null && transport !== null);
  await node.propose(Buffer.from("warm up"));
  const before = transport.stats().sentMessages;
  const started = performance.now();
  await Promise.all(Array.from({ length: 200 }, (_, i) => node.propose(Buffer.from(`p${i}`))));
  const sent = transport.stats().sentMessages - before;
  // The batch's appends and commit notices are a handful per follower; the heartbeats each
  // follower gets every 50 ms tick are allowed on top, so a slow runner does not fail this.
  const ticks = Math.ceil((performance.now() - started) / 50) + 1;
  const bound = 12 + 2 * ticks;
  assert.ok(sent <= bound, `200 proposals took ${sent} messages from the leader (bound ${bound} after ${ticks} ticks)`);
});

/** A 3-node cluster whose members' fsyncs can each be held at a gate; warmed up with one put. */
async function gatedCluster(
  t: TestContext,
  options: { snapshotEveryEntries?: number } = {},
): Promise<{ cluster: TestCluster; gates: Map<number, GatedFsync>; leader: TestMember; index: number }> {
  const { cluster, gates } = await startGatedCluster(t, options, () => new GatedFsync(), (openerOf) => ({ walOpenSegment: openerOf }));
  const leader = await cluster.leader();
  assert.ok(leader.node !== null);
  const { index } = await leader.node.propose(Buffer.from("warm up"));
  // Every member has the warm-up entry durable, so later fsyncs are only the ones tested.
  await waitFor("every member to apply the warm-up entry", () => cluster.members.every((member) => member.machine.applied.length === 1));
  return { cluster, gates, leader, index };
}

function tracked<T>(promise: Promise<T>): { done: () => boolean; promise: Promise<T> } {
  let done = false;
  return {
    done: () => done,
    promise: promise.then((value) => {
      done = true;
      return value;
    }),
  };
}

test("an entry both followers persisted is answered while the leader's own fsync still runs", async (t) => {
  const { gates, leader, index } = await gatedCluster(t);
  const gate = gates.get(leader.id);
  assert.ok(leader.node !== null && gate !== undefined);
  gate.close();
  const first = tracked(leader.node.propose(Buffer.from("first")));
  await waitFor("the leader's fsync to be held", () => gate.held() === 1);
  await waitFor("the proposal to be answered on the followers' acknowledgements", first.done);
  assert.equal(gate.held(), 1, "the leader's own fsync is still running");
  assert.equal((await first.promise).index, index + 1);
  assert.deepEqual(leader.machine.applied, ["warm up", "first"]);
});

test("a committed entry is answered while the leader's fsync of newer entries in its Ready still runs", async (t) => {
  const { cluster, gates, leader, index } = await gatedCluster(t);
  const leaderGate = gates.get(leader.id);
  const slowGate = gates.get(cluster.otherThan(leader).id);
  assert.ok(leader.node !== null && leaderGate !== undefined && slowGate !== undefined);
  // One follower's disk stalls: every commit now needs the leader's own fsync as well.
  slowGate.close();
  leaderGate.close();
  const first = tracked(leader.node.propose(Buffer.from("first")));
  await waitFor("the leader's fsync of the first entry to be held", () => leaderGate.held() === 1);
  const second = tracked(leader.node.propose(Buffer.from("second")));
  // The first entry's fsync completes and it commits; the next Ready carries that commit and
  // the second entry, whose fsync is held: the first is answered without waiting for it.
  leaderGate.letOneThrough();
  await waitFor("the first proposal to be answered", first.done);
  await waitFor("the second entry's fsync to be held", () => leaderGate.held() === 1);
  assert.equal(second.done(), false);
  assert.equal((await first.promise).index, index + 1);
  leaderGate.openGate();
  await second.promise;
  assert.deepEqual(leader.machine.applied, ["warm up", "first", "second"]);
});

test("a snapshot due while early-applied entries are not yet in the leader's log waits for them", async (t) => {
  const { cluster, gates, leader, index } = await gatedCluster(t, { snapshotEveryEntries: 10 });
  const gate = gates.get(leader.id);
  const node = leader.node;
  assert.ok(node !== null && gate !== undefined);
  const snapshotBefore = node.status().snapshotIndex;
  gate.close();
  const first = tracked(node.propose(Buffer.from("first")));
  await waitFor("the leader's fsync to be held", () => gate.held() === 1);
  const values = Array.from({ length: 15 }, (_, i) => `early ${i}`);
  await Promise.all(values.map((value) => node.propose(Buffer.from(value))));
  await first.promise;
  // Applied on the followers' acknowledgements, past the end of the leader's own log.
  assert.equal(node.status().applied, index + 1 + values.length);
  assert.equal(node.status().snapshotIndex, snapshotBefore);
  gate.openGate();
  await waitFor("the leader to snapshot once its log holds what it applied", () => (node.status().snapshotIndex ?? 0) >= index + 1 + values.length);
  assert.deepEqual(cluster.fatalErrors, []);
  assert.deepEqual(leader.machine.applied, ["warm up", "first", ...values]);
});

test("a cancelled proposal wait rejects with CancelledError", async (t) => {
  const cluster = await TestCluster.start(3);
  t.after(() => cluster.close());
  const leader = await cluster.leader();
  assert.ok(leader.node);
  const controller = new AbortController();
  const pending = leader.node.propose(Buffer.from("cancelled wait"), { signal: controller.signal });
  controller.abort();
  await assert.rejects(pending, (error: unknown) => error instanceof Error && error.name === "CancelledError");
  const aborted = AbortSignal.abort();
  await assert.rejects(leader.node.propose(Buffer.from("x"), { signal: aborted }), (error: unknown) => error instanceof Error && error.name === "CancelledError");
});

test("a learner joins, catches up, is promoted, then removed", async (t) => {
  const cluster = await TestCluster.start(3, { snapshotEveryEntries: 20 });
  t.after(() => cluster.close());
  const leader = await cluster.leader();
  const node = leader.node;
  assert.ok(node !== null);
  for (let i = 0; i < 50; i += 1) await node.propose(Buffer.from(`before-join-${i}`));
  const joiner = await cluster.addMember(4);
  const asLearner = await node.addLearner({ id: 4, address: joiner.address });
  assert.deepEqual([...asLearner.learners], [4]);
  await waitFor("learner catches up", () => joiner.machine.applied.length === 50);
  assert.deepEqual(joiner.machine.applied, leader.machine.applied);
  const promoted = await node.promote(4);
  assert.deepEqual([...promoted.voters].sort(), [1, 2, 3, 4]);
  assert.deepEqual([...promoted.learners], []);
  await node.propose(Buffer.from("with four"));
  await waitFor("new voter applies", () => joiner.machine.applied.at(-1) === "with four");
  const removed = await node.removeMember(4);
  assert.deepEqual([...removed.voters].sort(), [1, 2, 3]);
  assert.equal(node.status().members.has(4), false);
});

test("leadership transfers to the chosen member", async (t) => {
  const cluster = await TestCluster.start(3);
  t.after(() => cluster.close());
  const leader = await cluster.leader();
  const target = cluster.otherThan(leader);
  assert.ok(leader.node);
  await leader.node.propose(Buffer.from("before transfer"));
  leader.node.transferLeadership(target.id);
  await waitFor("transfer", () => target.node?.status().role === "leader");
  const next = await cluster.leader();
  assert.equal(next.id, target.id);
});

test("a leader that loses its quorum steps down and rejects its pending proposals", async (t) => {
  const cluster = await TestCluster.start(3);
  t.after(() => cluster.close());
  const leader = await cluster.leader();
  assert.ok(leader.node);
  for (const member of cluster.members) {
    if (member.id !== leader.id) await cluster.stopMember(member.id);
  }
  // No quorum can acknowledge this entry; check-quorum makes the leader step down.
  await assert.rejects(leader.node.propose(Buffer.from("stranded")), (error: unknown) => {
    assert.ok(error instanceof UnavailableError);
    assert.match(error.message, /lost raft leadership/);
    return true;
  });
  assert.notEqual(leader.node.status().role, "leader");
  assert.ok(!leader.machine.applied.includes("stranded"));
});
