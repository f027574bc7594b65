import assert from "node:assert/strict";
import { test } from "node:test";

import { Client, credentials, status as grpcStatus } from "@grpc/grpc-js";
import type { ClientWritableStream, sendUnaryData, ServerReadableStream } from "@grpc/grpc-js";
import { pino } from "pino";

import { systemClock } from "../../../src/common/clock.js";
import type { ProtoGrpcType as RaftProto } from "../../../src/gen/raft.js";
import type { RaftSnapshotAck } from "../../../src/gen/shoal/v1/RaftSnapshotAck.js";
import type { RaftSnapshotChunk, RaftSnapshotChunk__Output } from "../../../src/gen/shoal/v1/RaftSnapshotChunk.js";
import type { RaftStreamSummary } from "../../../src/gen/shoal/v1/RaftStreamSummary.js";
import { newMessage } from "../../../src/raft/core/message.js";
import type { Message, NodeId } from "../../../src/raft/core/types.js";
import { messageToWire } from "../../../src/raft/transport/message-codec.js";
import { createGrpcRaftTransport } from "../../../src/raft/transport/transport.js";
import type { RaftTransport } from "../../../src/raft/transport/transport.js";
import { loadProto } from "../../../src/rpc/proto.js";
import { startGrpcServer } from "../../../src/rpc/server.js";
import type { GrpcServer } from "../../../src/rpc/server.js";
import { waitFor } from "../../helpers/wait.js";
import { Recorder } from "./recorder.js";

const logger = pino({ level: "silent" });
const raftService = loadProto<RaftProto>("shoal/v1/raft.proto").shoal.v1.Raft.service;
/** Well under the ~15 s a grpc keepalive takes to give up on a hung call. */
const cancelTimeoutMs = 5_000;
/** A deadline for each test as a whole: a call's outcome is awaited without one. */
const testOptions = { timeout: 20_000 };


function snapMessage(from: NodeId, to: NodeId, data: Buffer): Message {
  return newMessage({
    type: "snap",
    from,
    to,
    term: 1,
    snapshot: { metadata: { index: 10, term: 1, confState: { voters: [1, 2, 3], learners: [] } }, data },
  });
}

interface HungCall {
  readonly kind: "stream" | "snapshot";
  chunks: number;
  cancelled: boolean;
  readonly answer: () => void;
}

/**
 * A peer that accepts raft calls and reads them but never answers, as a hung process
 * would: only the caller cancelling a call ends it.
 */
async function startHungPeer(t: { after: (fn: () => Promise<void>) => void }): Promise<{ address: string; calls: HungCall[] }> {
  const calls: HungCall[] = [];
  const hang = <Request, Response>(kind: HungCall["kind"], call: ServerReadableStream<Request, Response>, callback: sendUnaryData<Response>): void => {
    const hung: HungCall = { kind, chunks: 0, cancelled: false, answer: () => callback({ code: grpcStatus.UNAVAILABLE, details: "test over" }) };
    calls.push(hung);
    call.on("data", () => {
      hung.chunks += 1;
    });
    call.on("cancelled", () => {
      hung.cancelled = true;
    });
  };
  const server = await startGrpcServer({
    host: "127.0.0.1",
    port: 0,
    services: [
      {
        definition: { ...raftService, Stream: { ...raftService.Stream, requestDeserialize: (bytes: Buffer) => bytes } },
        handlers: {
          Stream: (call: ServerReadableStream<Buffer, RaftStreamSummary>, callback: sendUnaryData<RaftStreamSummary>) => hang("stream", call, callback),
          SendSnapshot: (call: ServerReadableStream<RaftSnapshotChunk__Output, RaftSnapshotAck>, callback: sendUnaryData<RaftSnapshotAck>) =>
            hang("snapshot", call, callback),
        },
      },
    ],
  });
  t.after(async () => {
    for (const call of calls) if (!call.cancelled) call.answer();
    await server.close();
  });
  return { address: server.address, calls };
}

function hungCall(calls: readonly HungCall[], kind: HungCall["kind"]): HungCall | undefined {
  return calls.find((call) => call.kind === kind);
}

interface Transfer {
  readonly call: ClientWritableStream<RaftSnapshotChunk>;
  /** The call's status: OK or the error's code, with its details. */
  readonly outcome: Promise<{ code: grpcStatus; details: string }>;
}

/** Starts a SendSnapshot call from `from` the way a peer's transport does, head first. */
function startTransfer(client: Client, options: { from: NodeId; to: NodeId; totalBytes: number }): Transfer {
  const method = raftService.SendSnapshot;
  let call: ClientWritableStream<RaftSnapshotChunk> | undefined;
  const outcome = new Promise<{ code: grpcStatus; details: string }>((resolve) => {
    call = client.makeClientStreamRequest(method.path, method.requestSerialize, method.responseDeserialize, (error) => {
      resolve(error === null ? { code: grpcStatus.OK, details: "" } : { code: error.code, details: error.details });
    });
  });
  assert.ok(call !== undefined);
  // A refused call errors on the client side too; the outcome carries that error.
  call.on("error", () => undefined);
  const head = messageToWire(snapMessage(options.from, options.to, Buffer.alloc(0)), { includeSnapshotData: false });
  call.write({ head: { message: head, totalBytes: options.totalBytes } });
  return { call, outcome };
}

function finishTransfer(transfer: Transfer, bytes: number): Promise<{ code: grpcStatus; details: string }> {
  transfer.call.write({ data: Buffer.alloc(bytes, 1) });
  transfer.call.end();
  return transfer.outcome;
}

/**
 * Node 2's transport registered on a server it does not own, as the manager registers it
 * on the daemon's: closing the transport leaves the server serving.
 */
async function startReceiver(
  t: { after: (fn: () => Promise<void>) => void },
): Promise<{ two: RaftTransport; server: GrpcServer; client: Client; calls: () => number; headsAccepted: () => number }> {
  let calls = 0;
  let headsAccepted = 0;
  const log = {
    write(line: string): void {
      if (line.includes('"msg":"receiving a snapshot"')) headsAccepted += 1;
    },
  };
  const two = createGrpcRaftTransport({
    id: 2,
    logger: pino({ level: "debug" }, log),
    clock: systemClock,
    // Called as each inbound call starts: tells the test that a transfer is under way.
    authorizePeer: () => {
      calls += 1;
      return 1;
    },
  });
  const server = await startGrpcServer({ host: "127.0.0.1", port: 0, services: [two.grpcService()] });
  const client = new Client(server.address, credentials.createInsecure());
  t.after(async () => {
    client.close();
    await two.close();
    await server.close();
  });
  return { two, server, client, calls: () => calls, headsAccepted: () => headsAccepted };
}

/** Node 1's transport, with node 2 a peer that accepts calls and never answers them. */
async function startSenderToHungPeer(
  t: { after: (fn: () => Promise<void>) => void },
): Promise<{ peer: { address: string; calls: HungCall[] }; one: RaftTransport; recorder: Recorder }> {
  const peer = await startHungPeer(t);
  const one = createGrpcRaftTransport({ id: 1, logger, clock: systemClock });
  t.after(() => one.close());
  const recorder = new Recorder();
  one.setHandler(recorder);
  one.addPeer(2, peer.address);
  return { peer, one, recorder };
}

test("close() cancels an outbound snapshot transfer and the stream to a hung peer, and reports nothing afterwards", testOptions, async (t) => {
  const { peer, one, recorder } = await startSenderToHungPeer(t);
  one.send([newMessage({ type: "heartbeat", from: 1, to: 2, term: 1 }), snapMessage(1, 2, Buffer.alloc(3 * 1024 * 1024, 7))]);
  await waitFor("the stream and the transfer under way at the peer", () =>
    (hungCall(peer.calls, "stream")?.chunks ?? 0) > 0 && (hungCall(peer.calls, "snapshot")?.chunks ?? 0) > 0 ? true : undefined,
  );

  await one.close();

  await waitFor(
    "both calls cancelled at the peer",
    () => (hungCall(peer.calls, "stream")?.cancelled === true && hungCall(peer.calls, "snapshot")?.cancelled === true ? true : undefined),
    { timeoutMs: cancelTimeoutMs },
  );
  await waitFor("the cancelled transfer counted", () => (one.stats().snapshotsFailed === 1 ? true : undefined));
  assert.equal(one.stats().snapshotsSent, 0);
  assert.deepEqual(recorder.snapshots, [], "the handler hears nothing once close() has returned");
  assert.deepEqual(recorder.unreachable, []);
});

test("removePeer() cancels the snapshot transfer to the peer and reports it failed, as raft needs to send it again", testOptions, async (t) => {
  const { peer, one, recorder } = await startSenderToHungPeer(t);
  one.send([snapMessage(1, 2, Buffer.alloc(3 * 1024 * 1024, 7))]);
  await waitFor("the transfer under way at the peer", () => ((hungCall(peer.calls, "snapshot")?.chunks ?? 0) > 0 ? true : undefined));

  one.removePeer(2);

  await waitFor("the transfer cancelled at the peer", () => (hungCall(peer.calls, "snapshot")?.cancelled === true ? true : undefined), {
    timeoutMs: cancelTimeoutMs,
  });
  await waitFor("the failure reported", () => (recorder.snapshots.length > 0 ? true : undefined));
  assert.deepEqual(recorder.snapshots, [[2, "failure"]]);
  assert.equal(one.stats().snapshotsFailed, 1);
  assert.equal(one.stats().snapshotsSent, 0);
});

test("close() fails an inbound snapshot transfer under way with UNAVAILABLE instead of acknowledging it", testOptions, async (t) => {
  const { two, client, calls } = await startReceiver(t);
  const recorder = new Recorder();
  two.setHandler(recorder);
  const transfer = startTransfer(client, { from: 1, to: 2, totalBytes: 4 * 1024 * 1024 });
  transfer.call.write({ data: Buffer.alloc(1024 * 1024, 1) });
  await waitFor("the transfer under way", () => (calls() === 1 ? true : undefined));

  await two.close();

  // The rest is sent regardless, as a sender that has not heard yet would.
  const outcome = await finishTransfer(transfer, 3 * 1024 * 1024);
  assert.equal(outcome.code, grpcStatus.UNAVAILABLE);
  assert.match(outcome.details, /closed during the snapshot transfer/);
  assert.deepEqual(recorder.messages, []);
});

test("a snapshot for a node whose handler is null, or is cleared during the transfer, is refused with UNAVAILABLE", testOptions, async (t) => {
  const { two, client, calls } = await startReceiver(t);

  const beforeStart = await finishTransfer(startTransfer(client, { from: 1, to: 2, totalBytes: 1024 }), 1024);
  assert.equal(beforeStart.code, grpcStatus.UNAVAILABLE);
  assert.match(beforeStart.details, /raft node 2 is not running/);

  const recorder = new Recorder();
  two.setHandler(recorder);
  const transfer = startTransfer(client, { from: 1, to: 2, totalBytes: 1024 });
  await waitFor("the second transfer under way", () => (calls() === 2 ? true : undefined));
  two.setHandler(null);
  const cleared = await finishTransfer(transfer, 1024);
  assert.equal(cleared.code, grpcStatus.UNAVAILABLE);
  assert.match(cleared.details, /raft node 2 stopped during the snapshot transfer/);
  assert.deepEqual(recorder.messages, []);
});

test("a newer snapshot transfer from a sender replaces its older one still under way, whose sender may be gone", testOptions, async (t) => {
  const { two, client, headsAccepted } = await startReceiver(t);
  const recorder = new Recorder();
  two.setHandler(recorder);
  // Its sender vanished mid-transfer, and without keepalive the call stays open here.
  const stale = startTransfer(client, { from: 1, to: 2, totalBytes: 2 * 1024 * 1024 });
  stale.call.write({ data: Buffer.alloc(1024 * 1024, 1) });
  await waitFor("the stale transfer's head accepted", () => (headsAccepted() === 1 ? true : undefined));

  const retry = await finishTransfer(startTransfer(client, { from: 1, to: 2, totalBytes: 1024 }), 1024);
  assert.equal(retry.code, grpcStatus.OK, "the retry is not blocked by the stale transfer");
  const staleOutcome = await stale.outcome;
  assert.equal(staleOutcome.code, grpcStatus.CANCELLED);
  assert.match(staleOutcome.details, /replaced by a newer snapshot transfer from node 1/);
  assert.equal(recorder.messages.length, 1, "only the newer transfer is installed");
});
