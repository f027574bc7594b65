import assert from "node:assert/strict";
import { test } from "node:test";

import {
  decodeEntryEnvelope,
  decodeSnapshotEnvelope,
  encodeEntryEnvelope,
  encodeSnapshotEnvelope,
  envelopeCopySliceBytes,
} from "../../../src/raft/node/envelope.js";

test("a snapshot envelope round-trips the address book and the data", async () => {
  const members = new Map([
    [1, "127.0.0.1:4000"],
    [7, "a-manager-with-a-long-dns-name.cluster.example.internal:4242"],
  ]);
  const data = Buffer.from("state machine bytes");
  const decoded = decodeSnapshotEnvelope(await encodeSnapshotEnvelope({ members, data }));
  assert.deepEqual([...decoded.members], [...members]);
  assert.ok(Buffer.from(decoded.data).equals(data));
});

test("a snapshot envelope is written into a buffer of exactly its size, so the view it returns holds no slack", async () => {
  // The envelope is the writer's own buffer, not a copy: a size computed short would make
  // the writer grow (doubling), and the snapshot would pin the unused half.
  const members = new Map(Array.from({ length: 5 }, (_, i) => [i + 1, `manager-${i}.${"x".repeat(80)}.internal:4242`] as const));
  const envelope = await encodeSnapshotEnvelope({ members, data: Buffer.alloc(64 * 1024, 1) });
  assert.equal(envelope.byteLength, envelope.buffer.byteLength);
  assert.equal(Object.getPrototypeOf(envelope), Uint8Array.prototype, "a plain Uint8Array, as entries decoded off the wire are");
});

test("snapshot data given in parts is enveloped exactly as the parts joined, in a buffer of its size", async () => {
  const members = new Map([[1, "127.0.0.1:4000"]]);
  const parts = [Buffer.from("head "), new Uint8Array(0), Buffer.alloc(10_000, 2), Buffer.from(" tail")];
  const joined = Buffer.concat(parts);
  const envelope = await encodeSnapshotEnvelope({ members, data: parts });
  assert.deepEqual(Buffer.from(envelope), Buffer.from(await encodeSnapshotEnvelope({ members, data: joined })));
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

test("a snapshot envelope of many slices lets the event loop turn between them and holds the parts joined", async () => {
  const members = new Map([[1, "127.0.0.1:4000"]]);
  // Parts whose ends fall inside slices, so that a slice carried across parts shows.
  const parts = Array.from({ length: 7 }, (_, index) => Buffer.alloc(envelopeCopySliceBytes / 2 + 999 * index, index + 1));
  const joined = Buffer.concat(parts);
  let turns = 0;
  let done = false;
  const countTurns = (): void => {
    if (done) return;
    turns += 1;
    setImmediate(countTurns);
  };
  setImmediate(countTurns);
  const envelope = await encodeSnapshotEnvelope({ members, data: parts });
  done = true;
  const slices = Math.ceil(joined.length / envelopeCopySliceBytes);
  assert.ok(turns >= slices - 1, `the loop turned ${turns} times while ${slices} slices were copied`);
  assert.ok(Buffer.from(decodeSnapshotEnvelope(envelope).data).equals(joined));
});
