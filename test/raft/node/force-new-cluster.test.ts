import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

import { FailedPreconditionError } from "../../../src/common/errors.js";
import { encodeConfChange } from "../../../src/raft/core/index.js";
import type { Entry } from "../../../src/raft/core/types.js";
import { encodeEntryEnvelope, encodeSnapshotEnvelope } from "../../../src/raft/node/envelope.js";
import { confStateAfter, forceNewCluster } from "../../../src/raft/node/force-new-cluster.js";
import { DiskLogStorage } from "../../../src/raft/wal/disk-storage.js";
import { RecordingStateMachine, TestCluster, testLogger, waitFor } from "./cluster.js";

function normal(term: number, index: number, text: string): Entry {
  return { term, index, type: "normal", data: encodeEntryEnvelope({ nonce: 7, sequence: index }, Buffer.from(text)) };
}

/**
 * A member's log as a crash left it: snapshot at 1 (voters 1-3), entries 2..10 (terms 1
 * and 2), commit 6, and the hard state in `hardStateTerm`.
 */
async function writeLog(dir: string, hardStateTerm = 2): Promise<void> {
  const storage = await DiskLogStorage.open({ dir, logger: testLogger });
  const data = await encodeSnapshotEnvelope({ members: new Map([[1, "a:1"], [2, "b:1"], [3, "c:1"]]), data: await new RecordingStateMachine().snapshot() });
  const entries: Entry[] = [];
  for (let index = 2; index <= 10; index += 1) entries.push(normal(index < 5 ? 1 : 2, index, `e${index}`));
  // A committed conf change adding a learner (id 4) that the new cluster must remove too.
  entries[1] = { term: 1, index: 3, type: "conf-change", data: encodeConfChange({ type: "add-learner", nodeId: 4, context: Buffer.from("d:1") }) };
  await storage.save({
    snapshot: { metadata: { index: 1, term: 1, confState: { voters: [1, 2, 3], learners: [] } }, data },
    entries,
    hardState: { term: hardStateTerm, vote: 2, commit: 6 },
  });
  await storage.close();
}

test("forceNewCluster keeps the committed state, drops uncommitted entries and leaves one voter on disk", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "shoal-force-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeLog(dir);
  const machine = new RecordingStateMachine();
  const result = await forceNewCluster({ dataDir: dir, id: 1, address: "a:2", stateMachine: machine, logger: testLogger });
  assert.deepEqual(machine.applied, ["e2", "e4", "e5", "e6"]);
  assert.deepEqual(result, { index: 11, term: 3, committed: 6, discardedEntries: 4, removed: [2, 3, 4] });

  const reopened = await DiskLogStorage.open({ dir, logger: testLogger });
  t.after(() => reopened.close());
  const snapshot = reopened.snapshot();
  assert.deepEqual(snapshot.metadata, { index: 11, term: 3, confState: { voters: [1], learners: [], removed: [2, 3, 4] } });
  assert.equal(reopened.lastIndex(), 11);
  assert.deepEqual(reopened.initialState().hardState, { term: 3, vote: 0, commit: 11 });
});

test("forceNewCluster starts its term past the log's last term when the hard state is older than the log", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "shoal-force-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  // A torn write kept the entries of term 2 and lost the hard state that adopted term 2.
  await writeLog(dir, 1);
  const result = await forceNewCluster({ dataDir: dir, id: 1, address: "a:2", stateMachine: new RecordingStateMachine(), logger: testLogger });
  assert.equal(result.term, 3);
});

test("forceNewCluster refuses a directory without raft state and a member that is not a voter", async (t) => {
  const empty = await mkdtemp(join(tmpdir(), "shoal-force-"));
  const dir = await mkdtemp(join(tmpdir(), "shoal-force-"));
  t.after(() => Promise.all([rm(empty, { recursive: true, force: true }), rm(dir, { recursive: true, force: true })]));
  await assert.rejects(
    forceNewCluster({ dataDir: empty, id: 1, address: "a:1", stateMachine: new RecordingStateMachine(), logger: testLogger }),
    (error: unknown) => error instanceof FailedPreconditionError && /no raft state/.test(error.message),
  );
  await writeLog(dir);
  await assert.rejects(
    forceNewCluster({ dataDir: dir, id: 4, address: "d:1", stateMachine: new RecordingStateMachine(), logger: testLogger }),
    (error: unknown) => error instanceof FailedPreconditionError && /not a voter/.test(error.message),
  );
});

test("confStateAfter follows the core's rules for additions, promotions, demotions and removals", () => {
  const start = { voters: [1, 2], learners: [], removed: [] };
  const withLearner = confStateAfter(start, { type: "add-learner", nodeId: 3, context: new Uint8Array() });
  assert.deepEqual(withLearner, { voters: [1, 2], learners: [3], removed: [] });
  const promoted = confStateAfter(withLearner, { type: "add-voter", nodeId: 3, context: new Uint8Array() });
  assert.deepEqual(promoted, { voters: [1, 2, 3], learners: [], removed: [] });
  const removed = confStateAfter(promoted, { type: "remove-node", nodeId: 2, context: new Uint8Array() });
  assert.deepEqual(removed, { voters: [1, 3], learners: [], removed: [2] });
  // A removed id never comes back; the last voter is never removed.
  assert.deepEqual(confStateAfter(removed, { type: "add-voter", nodeId: 2, context: new Uint8Array() }), removed);
  const last = { voters: [1], learners: [], removed: [] };
  assert.deepEqual(confStateAfter(last, { type: "remove-node", nodeId: 1, context: new Uint8Array() }), last);
  // add-learner on a voter demotes it, except the last one.
  assert.deepEqual(confStateAfter(promoted, { type: "add-learner", nodeId: 1, context: new Uint8Array() }), { voters: [2, 3], learners: [1], removed: [] });
  assert.deepEqual(confStateAfter(last, { type: "add-learner", nodeId: 1, context: new Uint8Array() }), last);
});

test("a survivor of a three-member cluster restarts alone with every committed entry and takes writes", async (t) => {
  const cluster = await TestCluster.start(3, { snapshotEveryEntries: 20 });
  t.after(() => cluster.close());
  const leader = await cluster.leader();
  const values = Array.from({ length: 50 }, (_, i) => `v${i}`);
  for (const value of values) await leader.node?.propose(Buffer.from(value));
  const survivor = cluster.otherThan(leader);
  await waitFor("the survivor applies every value", () => survivor.machine.applied.length === values.length);
  for (const member of cluster.members) await cluster.stopMember(member.id);

  const machine = new RecordingStateMachine();
  const result = await forceNewCluster({ dataDir: survivor.dataDir, id: survivor.id, address: survivor.address, stateMachine: machine, logger: testLogger });
  assert.deepEqual(machine.applied, values);
  assert.deepEqual(result.removed, cluster.members.map((member) => member.id).filter((id) => id !== survivor.id));

  const node = await cluster.startMember(survivor.id, { bootstrap: false });
  await waitFor("the survivor leads alone", () => node.status().role === "leader", 10_000);
  await node.propose(Buffer.from("after"));
  assert.deepEqual(survivor.machine.applied, [...values, "after"]);
  // A second restart replays the new snapshot and the entry after it: the state is consistent.
  await cluster.stopMember(survivor.id);
  const again = await cluster.startMember(survivor.id, { bootstrap: false });
  await waitFor("the survivor leads again", () => again.status().role === "leader", 10_000);
  await waitFor("the survivor re-applies its log", () => survivor.machine.applied.length === values.length + 1);
  assert.deepEqual(survivor.machine.applied, [...values, "after"]);
});
