import assert from "node:assert/strict";
import { test } from "node:test";

import { pino } from "pino";

import { InvalidArgumentError } from "../../../src/common/errors.js";
import {
  encodeMemberEntry,
  encodeStoreEntry,
  ManagerStateMachine,
  type ManagerMember,
} from "../../../src/manager/manager/index.js";
import { MemberDirectory } from "../../../src/manager/manager/member-directory.js";
import { MemoryStore, type StoreChange } from "../../../src/manager/store/index.js";

const logger = pino({ level: "silent" });

function machine(): { store: MemoryStore; directory: MemberDirectory; stateMachine: ManagerStateMachine } {
  const store = new MemoryStore({ proposer: null, logger });
  const directory = new MemberDirectory();
  return { store, directory, stateMachine: new ManagerStateMachine({ store, directory }) };
}

const nodeChange: StoreChange = {
  action: "create",
  kind: "node",
  object: {
    id: "n1",
    meta: { version: 0, createdAt: 1, updatedAt: 1 },
    spec: { name: "", labels: {}, role: "manager", availability: "active" },
    status: { state: "ready", addr: "10.0.0.1", message: "" },
  },
};

const member: ManagerMember = { raftId: 42, nodeId: "n1", address: "10.0.0.1:4242", suffrage: "learner" };

test("store entries apply to the store at their raft index; member entries to the directory", () => {
  const { store, directory, stateMachine } = machine();
  stateMachine.apply({ index: 7, term: 2, data: encodeStoreEntry([nodeChange]) });
  stateMachine.apply({ index: 8, term: 2, data: encodeMemberEntry(member) });
  assert.equal(store.version, 7);
  assert.equal(store.view((tx) => tx.get("node", "n1"))?.meta.version, 7);
  assert.deepEqual(directory.byNodeId("n1"), member);
});

test("a snapshot restores store and directory on another manager", async () => {
  const source = machine();
  source.stateMachine.apply({ index: 3, term: 1, data: encodeStoreEntry([nodeChange]) });
  source.stateMachine.apply({ index: 4, term: 1, data: encodeMemberEntry(member) });
  source.stateMachine.apply({ index: 5, term: 1, data: encodeMemberEntry({ ...member, raftId: 43, nodeId: "n2", suffrage: "removed" }) });
  const target = machine();
  await target.stateMachine.restore(Buffer.concat(await source.stateMachine.snapshot()));
  assert.equal(target.store.version, 3);
  assert.ok(target.store.view((tx) => tx.get("node", "n1")) !== undefined);
  assert.deepEqual(target.directory.all(), source.directory.all());
  // Removed ids stay known so they are never handed out again.
  assert.equal(target.directory.isUsedRaftId(43), true);
  assert.equal(target.directory.byNodeId("n2"), undefined);
});

test("entries and snapshots that do not decode are refused", async () => {
  const { stateMachine } = machine();
  assert.throws(() => stateMachine.apply({ index: 1, term: 1, data: Buffer.from([9, 1, 2]) }), InvalidArgumentError);
  assert.throws(() => stateMachine.apply({ index: 1, term: 1, data: Buffer.concat([Buffer.of(2), Buffer.from('{"raftId":-1}')]) }), InvalidArgumentError);
  await assert.rejects(stateMachine.restore(Buffer.from([200, 0, 0, 0, 1])), InvalidArgumentError);
});

