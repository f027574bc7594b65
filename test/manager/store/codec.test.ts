import assert from "node:assert/strict";
import { test } from "node:test";

import { InvalidArgumentError } from "../../../src/common/errors.js";
import { decodeStoreChanges, encodeStoreChanges, entryChangesMax, type StoreChange } from "../../../src/manager/store/index.js";
import { newNode, newService, newTask } from "./fixtures.js";

const meta = { version: 3, createdAt: 10, updatedAt: 20 };

test("store changes round-trip through the raft entry encoding", () => {
  const service = { ...newService("s1", "web"), meta };
  const changes: StoreChange[] = [
    { action: "create", kind: "service", object: service },
    { action: "update", kind: "task", object: { ...newTask("t1", service, 1), meta, nodeId: "n1" } },
    { action: "delete", kind: "node", object: { ...newNode("n1", "host1"), meta } },
  ];
  assert.deepEqual(decodeStoreChanges(encodeStoreChanges(changes)), changes);
});

test("decoding refuses entries that do not parse, naming the field", () => {
  const encode = (value: unknown): Uint8Array => Buffer.from(JSON.stringify(value));
  const envelope = (changes: unknown): unknown => ({ format: "shoal.store.changes", formatVersion: 1, changes });
  assert.throws(() => decodeStoreChanges(Buffer.from("{")), InvalidArgumentError);
  assert.throws(() => decodeStoreChanges(encode({ ...(envelope([]) as object), formatVersion: 2 })), /formatVersion/);
  assert.throws(() => decodeStoreChanges(encode(envelope([{ action: "upsert", kind: "task", object: {} }]))), /changes\[0\]\.action/);
  const task = { ...newTask("t1", newService("s1", "web"), 1), meta };
  assert.throws(
    () => decodeStoreChanges(encode(envelope([{ action: "create", kind: "task", object: { ...task, status: { ...task.status, state: "dancing" } } }]))),
    /changes\[0\]\.object\.status\.state/,
  );
  assert.throws(() => decodeStoreChanges(encode(envelope(new Array(entryChangesMax + 1).fill(null)))), /at most/);
});
