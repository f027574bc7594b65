import assert from "node:assert/strict";
import { test } from "node:test";

import { InvalidArgumentError } from "../../../src/common/errors.js";
import {
  decodeStoreChanges,
  decodeStoreSnapshot,
  encodeStoreChanges,
  entryChangesMax,
  storeSnapshotPieces,
  type StoreChange,
  type StoreSnapshotContent,
} from "../../../src/manager/store/index.js";
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

test("a store snapshot's pieces join to the JSON of the whole snapshot, empty tables included", () => {
  const service = { ...newService("s1", "web"), meta };
  const content: StoreSnapshotContent = {
    version: 7,
    clusters: [],
    nodes: [{ ...newNode("n1", "host1"), meta }],
    services: [service],
    tasks: [1, 2, 3].map((slot) => ({ ...newTask(`t${slot}`, service, slot), meta })),
    networks: [],
  };
  const joined = [...storeSnapshotPieces(content)].join("");
  assert.equal(joined, JSON.stringify({ format: "shoal.store.snapshot", formatVersion: 1, ...content }));
  assert.deepEqual(decodeStoreSnapshot(Buffer.from(joined)), content);
});
