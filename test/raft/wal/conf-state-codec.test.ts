import assert from "node:assert/strict";
import { test } from "node:test";

import { loadSync } from "@grpc/proto-loader";

import type { RaftMessageBatch__Output } from "../../../src/gen/shoal/v1/RaftMessageBatch.js";
import { newMessage } from "../../../src/raft/core/index.js";
import type { Snapshot } from "../../../src/raft/core/types.js";
import { messageFromWire, messageToWire } from "../../../src/raft/transport/message-codec.js";
import { ByteReader, ByteWriter, decodeSnapshotMetadata, encodeSnapshotMetadata } from "../../../src/raft/wal/codec.js";
import { protoLoaderOptions } from "../../../src/rpc/proto.js";

const snapshot: Snapshot = {
  metadata: { index: 42, term: 3, confState: { voters: [1, 2, 3], learners: [7], removed: [4, 5] } },
  data: Buffer.from("state"),
};

test("removed member ids survive the WAL's snapshot metadata encoding", () => {
  const writer = new ByteWriter();
  encodeSnapshotMetadata(writer, snapshot.metadata);
  assert.deepEqual(decodeSnapshotMetadata(new ByteReader(writer.view())), snapshot.metadata);
});

test("removed member ids survive a snapshot message on the wire", () => {
  const definition = loadSync("shoal/v1/raft.proto", protoLoaderOptions);
  const stream = definition["shoal.v1.Raft"];
  assert.ok(stream !== undefined && "Stream" in stream);
  const method = stream.Stream;
  const message = newMessage({ type: "snap", from: 1, to: 7, term: 3, snapshot });
  const bytes = method.requestSerialize({ messages: [messageToWire(message, { includeSnapshotData: true })] });
  // proto-loader's deserializer is untyped; the generated type describes what it returns.
  const batch = method.requestDeserialize(bytes) as RaftMessageBatch__Output;
  const wire = batch.messages[0];
  assert.ok(wire !== undefined);
  const decoded = messageFromWire(wire);
  assert.deepEqual(decoded.snapshot?.metadata.confState, snapshot.metadata.confState);
});
