import assert from "node:assert/strict";
import { test, type TestContext } from "node:test";

import { FailedPreconditionError, UnavailableError } from "../../../src/common/errors.js";
import { NotLeaderError, type RaftNode } from "../../../src/raft/node.js";
import { isNotLeader, settlesWithin, startGatedCluster, TestCluster, waitFor } from "./cluster.js";
import { GatedFsync } from "./gated-fsync.js";

test("every membership change on a follower is refused at once with NotLeaderError naming the leader", async (t) => {
  const cluster = await TestCluster.start(3);
  t.after(() => cluster.close());
  const leader = await cluster.leader();
  const node = cluster.otherThan(leader).node;
  assert.ok(node);
  const attempts = [
    () => node.addLearner({ id: 7, address: "127.0.0.1:1" }),
    () => node.addMember({ id: 8, address: "127.0.0.1:1" }),
    () => node.promote(7),
    () => node.removeMember(leader.id),
  ];
  for (const attempt of attempts) {
    // A rejected promise, not a synchronous throw: callers chain on it.
    let promise: Promise<unknown> | undefined;
    assert.doesNotThrow(() => {
      promise = attempt();
    });
    assert.ok(promise !== undefined);
    await settlesWithin("a follower's membership change", assert.rejects(promise, isNotLeader(leader.id)));
  }
  assert.equal(leader.node?.status().members.has(7), false);
});

test("a membership change made while the leader is stepping down fails at once instead of hanging", async (t) => {
  const { cluster, gates } = await startGatedCluster(t, {}, () => new GatedFsync(), (openerOf) => ({ walOpenSegment: openerOf }));
  const old = await cluster.leader();
  const target = cluster.members.find((member) => member.id !== old.id);
  const gate = gates.get(old.id);
  assert.ok(old.node && target?.node && gate);
  await old.node.propose(Buffer.from("warm up"));
  const term = old.node.status().term;
  // The old leader's disk stalls: its core steps down on the new leader's vote request,
  // but the Ready that says so (it carries the new term) cannot be persisted yet.
  gate.close();
  old.node.transferLeadership(target.id);
  await waitFor("the new leader", () => target.node?.status().role === "leader");
  await waitFor("the old leader's core to follow the new term", () => (old.node?.status().term ?? 0) > term);
  assert.equal(old.node.status().role, "leader", "the driver has not seen the step-down yet");
  // Every attempt fails at once; the error names the new leader as soon as the old
  // leader's core has heard from it (before that, no leader: 0).
  const named = await waitFor("a refusal that names the new leader", async () => {
    const attempt = old.node?.addLearner({ id: 9, address: "127.0.0.1:1" });
    assert.ok(attempt !== undefined);
    const error = await settlesWithin("a membership change on the stepping-down leader", attempt.then(() => undefined, (reason: unknown) => reason));
    assert.ok(error instanceof NotLeaderError, `expected NotLeaderError, got ${String(error)}`);
    assert.ok(error.leader === 0 || error.leader === target.id, `the refusal names member ${error.leader}`);
    return error.leader === target.id ? error : undefined;
  });
  assert.equal(named.leader, target.id);
  await settlesWithin("a proposal on the stepping-down leader", assert.rejects(old.node.propose(Buffer.from("late")), NotLeaderError));
  gate.openGate();
});

/** The leader of a 3-member cluster, with an entry of its term committed and both followers then stopped. */
async function leaderWithoutQuorum(t: TestContext): Promise<RaftNode> {
  const cluster = await TestCluster.start(3);
  t.after(() => cluster.close());
  const leader = await cluster.leader();
  assert.ok(leader.node);
  await leader.node.propose(Buffer.from("own term committed"));
  for (const member of cluster.members) {
    if (member.id !== leader.id) await cluster.stopMember(member.id);
  }
  return leader.node;
}

test("a pending membership change is rejected when the leader loses its quorum", async (t) => {
  const node = await leaderWithoutQuorum(t);
  const change = node.addLearner({ id: 9, address: "127.0.0.1:1" });
  await assert.rejects(node.addLearner({ id: 9, address: "127.0.0.1:1" }), FailedPreconditionError);
  // check-quorum makes the leader step down within an election timeout or two.
  await settlesWithin(
    "the stranded membership change",
    assert.rejects(change, (error: unknown) => error instanceof UnavailableError && /lost raft leadership/.test(error.message)),
    5_000,
  );
  assert.notEqual(node.status().role, "leader");
});

test("a membership change wait can be cancelled with its signal", async (t) => {
  const node = await leaderWithoutQuorum(t);
  const controller = new AbortController();
  const change = node.addLearner({ id: 9, address: "127.0.0.1:1" }, { signal: controller.signal });
  controller.abort();
  await settlesWithin("the cancelled wait", assert.rejects(change, (error: unknown) => error instanceof Error && error.name === "CancelledError"));
});

test("a demoted voter keeps the log as a learner; a demoted leader steps down", async (t) => {
  const cluster = await TestCluster.start(3);
  t.after(() => cluster.close());
  const leader = await cluster.leader();
  assert.ok(leader.node);
  await leader.node.propose(Buffer.from("before"));
  const demoted = cluster.otherThan(leader);
  const afterDemotion = await settlesWithin("the demotion", leader.node.demote(demoted.id));
  assert.deepEqual([...afterDemotion.learners], [demoted.id]);
  assert.equal(afterDemotion.voters.length, 2);
  await leader.node.propose(Buffer.from("as learner"));
  await waitFor("the learner to apply", () => demoted.machine.applied.at(-1) === "as learner");
  // Two voters left: demoting the leader hands the cluster to the other voter.
  const afterSelf = await settlesWithin("the leader's own demotion", leader.node.demote(leader.id));
  assert.deepEqual([...afterSelf.voters], cluster.members.filter((member) => member.id !== leader.id && member.id !== demoted.id).map((member) => member.id));
  const next = await cluster.leader();
  assert.notEqual(next.id, leader.id);
  assert.ok(next.node);
  await assert.rejects(next.node.demote(next.id), (error: unknown) => error instanceof FailedPreconditionError && /last voter/.test(error.message));
  await next.node.propose(Buffer.from("one voter"));
  for (const member of cluster.members) {
    await waitFor(`member ${member.id} to apply`, () => member.machine.applied.at(-1) === "one voter");
  }
});
