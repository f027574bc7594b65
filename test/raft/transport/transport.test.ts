import assert from "node:assert/strict";
import { test } from "node:test";

import { pino } from "pino";

import { systemClock } from "../../../src/common/clock.js";
import { newMessage } from "../../../src/raft/core/message.js";
import type { Message, NodeId } from "../../../src/raft/core/types.js";
import { createGrpcRaftTransport, reconnectBackoffMsMin } from "../../../src/raft/transport/transport.js";
import type { RaftTransport } from "../../../src/raft/transport/transport.js";
import { FakeClock } from "../../helpers/fake-clock.js";
import { waitFor } from "../../helpers/wait.js";
import { Recorder } from "./recorder.js";

const logger = pino({ level: "silent" });

function message(partial: Partial<Message> & Pick<Message, "type" | "from" | "to">): Message {
  return newMessage({ term: 1, ...partial });
}


async function pair(
  t: { after: (fn: () => Promise<void>) => void },
  options: { authorize?: (claimed: NodeId) => NodeId | null } = {},
): Promise<{ one: RaftTransport; two: RaftTransport; atOne: Recorder; atTwo: Recorder }> {
  const one = createGrpcRaftTransport({ id: 1, logger, clock: systemClock });
  const authorize = options.authorize;
  const two = createGrpcRaftTransport({
    id: 2,
    logger,
    clock: systemClock,
    ...(authorize === undefined ? {} : { authorizePeer: () => authorize(1) }),
  });
  t.after(() => one.close());
  t.after(() => two.close());
  const atOne = new Recorder();
  const atTwo = new Recorder();
  one.setHandler(atOne);
  two.setHandler(atTwo);
  const addressOne = await one.listen({ host: "127.0.0.1", port: 0 });
  const addressTwo = await two.listen({ host: "127.0.0.1", port: 0 });
  one.addPeer(2, addressTwo);
  two.addPeer(1, addressOne);
  return { one, two, atOne, atTwo };
}

test("batched messages arrive in order with their entries intact", async (t) => {
  const { one, atTwo } = await pair(t);
  const sent: Message[] = [];
  for (let index = 1; index <= 300; index += 1) {
    sent.push(
      message({
        type: "app",
        from: 1,
        to: 2,
        index,
        logTerm: 1,
        commit: index - 1,
        entries: [{ term: 1, index: index + 1, type: "normal", data: Buffer.from(`entry ${index}`) }],
        context: Buffer.from([index % 256]),
      }),
    );
  }
  one.send(sent.slice(0, 100));
  one.send(sent.slice(100));
  await waitFor("300 messages", () => (atTwo.messages.length === 300 ? true : undefined));
  assert.deepEqual(
    atTwo.messages.map((m) => [m.type, m.index, Buffer.from(m.entries[0]?.data ?? []).toString(), m.context[0]]),
    sent.map((m) => [m.type, m.index, Buffer.from(m.entries[0]?.data ?? []).toString(), m.context[0]]),
  );
  assert.equal(one.stats().sentMessages, 300);
});

test("a snapshot larger than a gRPC message travels in chunks and is reported finished", async (t) => {
  const { one, atOne, atTwo } = await pair(t);
  const data = Buffer.alloc(20 * 1024 * 1024);
  for (let offset = 0; offset < data.length; offset += 4096) data[offset] = offset % 251;
  one.send([
    message({
      type: "snap",
      from: 1,
      to: 2,
      snapshot: { metadata: { index: 500, term: 3, confState: { voters: [1, 2], learners: [] } }, data },
    }),
  ]);
  await waitFor("snapshot delivery", () => (atOne.snapshots.length === 1 ? true : undefined), { timeoutMs: 20_000 });
  assert.deepEqual(atOne.snapshots, [[2, "finish"]]);
  const received = atTwo.messages[0];
  assert.equal(received?.type, "snap");
  assert.equal(received.snapshot?.metadata.index, 500);
  assert.ok(Buffer.from(received.snapshot?.data ?? []).equals(data));
});

test("an unreachable peer is reported once per failed stream; sends during the backoff are dropped and counted", async (t) => {
  const clock = new FakeClock();
  const one = createGrpcRaftTransport({ id: 1, logger, clock });
  t.after(() => one.close());
  const recorder = new Recorder();
  one.setHandler(recorder);
  // Port 1 on loopback: nothing listens there, connections are refused at once.
  one.addPeer(2, "127.0.0.1:1");
  one.send([message({ type: "heartbeat", from: 1, to: 2 })]);
  await waitFor("unreachable report", () => (recorder.unreachable.length > 0 ? true : undefined));
  assert.deepEqual(recorder.unreachable, [2]);
  const droppedBefore = one.stats().droppedMessages;
  one.send([message({ type: "heartbeat", from: 1, to: 2 }), message({ type: "heartbeat", from: 1, to: 2 })]);
  assert.equal(one.stats().droppedMessages, droppedBefore + 2);
  assert.deepEqual(recorder.unreachable, [2], "refused sends are no new news of the peer");
  clock.advance(reconnectBackoffMsMin);
  one.send([message({ type: "heartbeat", from: 1, to: 2 })]);
  await waitFor("the retried stream's failure reported", () => (recorder.unreachable.length > 1 ? true : undefined));
  assert.deepEqual(recorder.unreachable, [2, 2]);
});

test("a full peer queue drops and counts instead of growing", (t) => {
  const one = createGrpcRaftTransport({ id: 1, logger, clock: systemClock, peerQueueMessagesMax: 0 });
  t.after(() => one.close());
  const recorder = new Recorder();
  one.setHandler(recorder);
  one.addPeer(2, "127.0.0.1:1");
  one.send([message({ type: "heartbeat", from: 1, to: 2 }), message({ type: "heartbeat", from: 1, to: 2 })]);
  assert.equal(one.stats().droppedMessages, 2);
  assert.deepEqual(recorder.unreachable, [2, 2]);
});

test("authorizePeer refusing a caller keeps its messages out", async (t) => {
  const { one, atTwo } = await pair(t, { authorize: () => null });
  one.send([message({ type: "heartbeat", from: 1, to: 2 })]);
  const probe = new Recorder();
  one.setHandler(probe);
  await waitFor("refusal reported as unreachable", () => (probe.unreachable.length > 0 ? true : undefined));
  assert.equal(atTwo.messages.length, 0);
});

test("authorizePeer binding a different id refuses a sender claiming another one", async (t) => {
  const { one, atTwo } = await pair(t, { authorize: () => 7 });
  const probe = new Recorder();
  one.setHandler(probe);
  one.send([message({ type: "heartbeat", from: 1, to: 2 })]);
  await waitFor("refusal reported as unreachable", () => (probe.unreachable.length > 0 ? true : undefined));
  assert.equal(atTwo.messages.length, 0);
});

test("messages from a peer that are local-only types are refused", async (t) => {
  const { one, atTwo } = await pair(t);
  const probe = new Recorder();
  one.setHandler(probe);
  one.send([message({ type: "hup", from: 1, to: 2 })]);
  await waitFor("refusal reported as unreachable", () => (probe.unreachable.length > 0 ? true : undefined));
  assert.equal(atTwo.messages.length, 0);
});
