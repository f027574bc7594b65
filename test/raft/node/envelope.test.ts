import assert from "node:assert/strict";
import { test } from "node:test";

import {
  decodeEntryEnvelope,
  decodeSnapshotEnvelope,
  encodeEntryEnvelope,
  encodeSnapshotEnvelope,
} from "../../../src/raft/node/envelope.js";

test("a snapshot envelope round-trips the address book and the data", () => {
  const members = new Map([
    [1, "127.0.0.1:4000"],
    [7, "a-manager-with-a-long-dns-name.cluster.example.internal:4242"],
  ]);
  const data = Buffer.from("state machine bytes");
  const decoded = decodeSnapshotEnvelope(encodeSnapshotEnvelope({ members, data }));
  assert.deepEqual([...decoded.members], [...members]);
  assert.ok(Buffer.from(decoded.data).equals(data));
});

test("a snapshot envelope is written into a buffer of exactly its size, so the view it returns holds no slack", () => {
  // The envelope is the writer's own buffer, not a copy: a size computed short would make
  // the writer grow (doubling), and the snapshot would pin the unused half.
  const members = new Map(Array.from({ length: 5 }, (_, i) => [i + 1, `manager-${i}.${"x".repeat(80)}.internal:4242`] as const));
  const envelope = encodeSnapshotEnvelope({ members, data: Buffer.alloc(64 * 1024, 1) });
  assert.equal(envelope.byteLength, envelope.buffer.byteLength);
  assert.equal(Object.getPrototypeOf(envelope), Uint8Array.prototype, "a plain Uint8Array, as entries decoded off the wire are");
});

test("snapshot data given in parts is enveloped exactly as the parts joined, in a buffer of its size", () => {
  const members = new Map([[1, "127.0.0.1:4000"]]);
  const parts = [Buffer.from("head "), new Uint8Array(0), Buffer.alloc(10_000, 2), Buffer.from(" tail")];
  const joined = Buffer.concat(parts);
  const envelope = encodeSnapshotEnvelope({ members, data: parts });
  assert.deepEqual(Buffer.from(envelope), Buffer.from(encodeSnapshotEnvelope({ members, data: joined })));
  assert.equal(envelope.byteLength, envelope.buffer.byteLength);
  assert.ok(Buffer.from(decodeSnapshotEnvelope(envelope).data).equals(joined));
});

test("an entry envelope carries the proposal id and the data, as a plain Uint8Array", () => {
  const envelope = encodeEntryEnvelope({ nonce: 2 ** 40 + 3, sequence: 17 }, Buffer.from("put"));
  assert.equal(Object.getPrototypeOf(envelope), Uint8Array.prototype);
  const { id, data } = decodeEntryEnvelope(envelope, 5);
  assert.deepEqual(id, { nonce: 2 ** 40 + 3, sequence: 17 });
  assert.equal(Buffer.from(data).toString(), "put");
});
