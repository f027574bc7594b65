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

function snapshotContent(): StoreSnapshotContent {
  const service = { ...newService("s1", "web"), meta };
  return {
    version: 7,
    clusters: [],
    nodes: [{ ...newNode("n1", "host1"), meta }],
    services: [service],
    tasks: [1, 2, 3].map((slot) => ({ ...newTask(`t${slot}`, service, slot), meta })),
    networks: [],
  };
}

test("a store snapshot is a header line and one line per object, and decodes to what was encoded", () => {
  const content = snapshotContent();
  const lines = [...storeSnapshotPieces(content)].join("").split("\n");
  assert.equal(lines.pop(), "", "every line ends with a newline");
  assert.deepEqual(JSON.parse(lines[0] ?? ""), {
    format: "shoal.store.snapshot",
    formatVersion: 2,
    version: 7,
    counts: { clusters: 0, nodes: 1, services: 1, tasks: 3, networks: 0 },
  });
  assert.deepEqual(
    lines.slice(1).map((line) => JSON.parse(line) as unknown),
    [...content.nodes, ...content.services, ...content.tasks],
  );
  assert.deepEqual(decodeStoreSnapshot(Buffer.from(lines.join("\n") + "\n")), content);
});

test("a version 1 snapshot (one JSON object, written before snapshots were lines) still decodes", () => {
  const { networks, ...content } = snapshotContent();
  // Snapshots from before networks existed have no such key.
  const versionOne = Buffer.from(JSON.stringify({ format: "shoal.store.snapshot", formatVersion: 1, ...content }));
  assert.deepEqual(decodeStoreSnapshot(versionOne), { ...content, networks });
});

test("a snapshot missing objects its header counts, or holding more, is refused", () => {
  const text = [...storeSnapshotPieces(snapshotContent())].join("");
  const withoutLastTask = text.slice(0, text.lastIndexOf("\n", text.length - 2) + 1);
  assert.throws(() => decodeStoreSnapshot(Buffer.from(withoutLastTask)), /tasks\[2\]: the snapshot ends before its 3 tasks/);
  assert.throws(() => decodeStoreSnapshot(Buffer.from(text + "{}\n")), /3 bytes after the objects its header counts/);
  const counted = text.replace('"tasks":3', '"tasks":2');
  assert.throws(() => decodeStoreSnapshot(Buffer.from(counted)), InvalidArgumentError);
  assert.throws(() => decodeStoreSnapshot(Buffer.from(text.replace('"formatVersion":2', '"formatVersion":3'))), /formatVersion/);
});
