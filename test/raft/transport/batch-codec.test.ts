import assert from "node:assert/strict";
import { test } from "node:test";

import { loadSync } from "@grpc/proto-loader";

import type { RaftMessageBatch__Output } from "../../../src/gen/shoal/v1/RaftMessageBatch.js";
import { newMessage } from "../../../src/raft/core/index.js";
import type { Message } from "../../../src/raft/core/types.js";
import { decodeMessageBatch, encodeMessageBatch } from "../../../src/raft/transport/batch-codec.js";
import { messageFromWire, messageToWire } from "../../../src/raft/transport/message-codec.js";
import { InvalidArgumentError } from "../../../src/common/errors.js";
import { protoLoaderOptions } from "../../../src/rpc/proto.js";

function streamMethod(): { serialize: (value: object) => Buffer; deserialize: (bytes: Buffer) => RaftMessageBatch__Output } {
  const definition = loadSync("shoal/v1/raft.proto", protoLoaderOptions);
  const service = definition["shoal.v1.Raft"];
  assert.ok(service !== undefined && "Stream" in service);
  const method = service.Stream;
  return {
    serialize: (value) => method.requestSerialize(value),
    // proto-loader's deserializer is untyped; the generated type describes what it returns.
    deserialize: (bytes) => method.requestDeserialize(bytes) as RaftMessageBatch__Output,
  };
}

/** Messages covering every field, zero values, big numbers and both entry types. */
const messages: Message[] = [
  newMessage({
    type: "app",
    from: 1,
    to: 2,
    term: 7,
    logTerm: 6,
    index: 2 ** 40 + 3,
    commit: Number.MAX_SAFE_INTEGER,
    entries: [
      { term: 7, index: 2 ** 40 + 4, type: "normal", data: Buffer.from("put a=1") },
      { term: 7, index: 2 ** 40 + 5, type: "conf-change", data: Buffer.from([1, 2, 3]) },
      { term: 7, index: 2 ** 40 + 6, type: "normal", data: new Uint8Array(0) },
    ],
  }),
  newMessage({ type: "app-resp", from: 1, to: 2, term: 7, index: 9, reject: true, rejectHint: 300 }),
  newMessage({ type: "heartbeat", from: 1, to: 2, term: 2 ** 31, commit: 2 ** 32, context: Buffer.from("read-42") }),
  newMessage({
    type: "snap",
    from: 1,
    to: 2,
    term: 3,
    snapshot: {
      metadata: { index: 500, term: 3, confState: { voters: [1, 2, 3], learners: [200], removed: [4, 2 ** 35] } },
      data: Buffer.from("state bytes"),
    },
  }),
  newMessage({ type: "vote", from: 1, to: 2 }),
];

/** Byte fields as plain Uint8Array views, so that deepEqual compares contents only. */
function plain(message: Message): Message {
  const bytes = (data: Uint8Array): Uint8Array => new Uint8Array(data);
  return {
    ...message,
    context: bytes(message.context),
    entries: message.entries.map((entry) => ({ ...entry, data: bytes(entry.data) })),
    snapshot: message.snapshot === null ? null : { ...message.snapshot, data: bytes(message.snapshot.data) },
  };
}

test("a batch the hand-written encoder writes decodes with proto-loader to the same messages", () => {
  const batch = streamMethod().deserialize(encodeMessageBatch({ from: 1, messages }));
  assert.equal(batch.from, 1);
  assert.deepEqual(batch.messages.map((wire) => plain(messageFromWire(wire))), messages.map(plain));
});

test("a batch proto-loader writes decodes with the hand-written decoder to the same messages", () => {
  const bytes = streamMethod().serialize({ from: 1, messages: messages.map((m) => messageToWire(m, { includeSnapshotData: true })) });
  const batch = decodeMessageBatch(bytes);
  assert.equal(batch.from, 1);
  assert.deepEqual(batch.messages.map(plain), messages.map(plain));
});

test("unknown fields are skipped, as protobuf requires", () => {
  const known = encodeMessageBatch({ from: 3, messages: [newMessage({ type: "heartbeat-resp", from: 3, to: 1, term: 4 })] });
  // Field 15 as a varint, field 16 as bytes, field 17 as fixed32 and field 18 as fixed64.
  const unknown = Buffer.from([0x78, 0x96, 0x01, 0x82, 0x01, 0x02, 0xaa, 0xbb, 0x8d, 0x01, 1, 2, 3, 4, 0x91, 0x01, 1, 2, 3, 4, 5, 6, 7, 8]);
  const batch = decodeMessageBatch(Buffer.concat([unknown, known]));
  assert.equal(batch.from, 3);
  assert.equal(batch.messages[0]?.type, "heartbeat-resp");
  assert.equal(batch.messages[0]?.term, 4);
});

test("malformed batches are refused with InvalidArgumentError", () => {
  const valid = encodeMessageBatch({ from: 1, messages: [messages[0] ?? newMessage({ type: "app", from: 1, to: 2 })] });
  const cases: [string, Buffer][] = [
    ["truncated", valid.subarray(0, valid.length - 3)],
    ["a number beyond 2^53", Buffer.from([0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f])],
    ["an 11-byte varint", Buffer.from([0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00])],
    ["a local-only message type", encodeMessageBatch({ from: 1, messages: [newMessage({ type: "hup", from: 1, to: 2 })] })],
    ["an unknown message type", Buffer.from([0x12, 0x02, 0x08, 0x63])],
    ["message type 0", Buffer.from([0x12, 0x02, 0x10, 0x01])],
    ["an unknown entry type", Buffer.from([0x12, 0x06, 0x08, 0x04, 0x3a, 0x02, 0x18, 0x05])],
    ["reject that is not a boolean", Buffer.from([0x12, 0x04, 0x08, 0x05, 0x50, 0x02])],
    ["a known field with the wrong wire type", Buffer.from([0x12, 0x04, 0x08, 0x04, 0x3d, 0x00])],
    ["a length past the end", Buffer.from([0x12, 0x7f, 0x08, 0x04])],
    ["field number 0", Buffer.from([0x00, 0x01])],
    ["a group wire type", Buffer.from([0x7b])],
  ];
  for (const [name, bytes] of cases) {
    assert.throws(() => decodeMessageBatch(bytes), InvalidArgumentError, name);
  }
});
