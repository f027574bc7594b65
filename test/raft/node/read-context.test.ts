// ReadIndex contexts across restarts: a leader's answer to a read sent by a previous run of
// a node may arrive after the node restarted, and must not complete a read of the new run.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

import { newMessage } from "../../../src/raft/core/message.js";
import type { Message, NodeId } from "../../../src/raft/core/types.js";
import { RaftNode } from "../../../src/raft/node.js";
import type { RaftTransport, RaftTransportHandler, RaftTransportStats } from "../../../src/raft/transport/transport.js";
import type { GrpcService } from "../../../src/rpc/server.js";
import { FakeClock } from "../../helpers/fake-clock.js";
import { seededRandom } from "../core/helpers.js";
import { RecordingStateMachine, testLogger, waitFor } from "./cluster.js";

/** Records what the node sends; the test delivers the peers' messages by hand. */
class CapturingTransport implements RaftTransport {
  readonly sent: Message[] = [];
  readonly #peers = new Map<NodeId, string>();
  #handler: RaftTransportHandler | null = null;

  constructor(readonly id: NodeId) {}

  setHandler(handler: RaftTransportHandler | null): void {
    this.#handler = handler;
  }

  addPeer(id: NodeId, address: string): void {
    this.#peers.set(id, address);
  }

  removePeer(id: NodeId): void {
    this.#peers.delete(id);
  }

  peers(): ReadonlyMap<NodeId, string> {
    return this.#peers;
  }

  send(messages: readonly Message[]): void {
    this.sent.push(...messages);
  }

  grpcService(): GrpcService {
    throw new Error("this test transport has no gRPC service");
  }

  listen(): Promise<string> {
    return Promise.reject(new Error("this test transport does not listen"));
  }

  stats(): RaftTransportStats {
    return { sentMessages: this.sent.length, receivedMessages: 0, droppedMessages: 0, snapshotsSent: 0, snapshotsFailed: 0 };
  }

  close(): Promise<void> {
    this.#handler = null;
    return Promise.resolve();
  }

  deliver(message: Message): void {
    const handler = this.#handler ?? assert.fail("the node is not receiving");
    handler.step(message);
  }
}

const leaderTerm = 2;

/** One run of member 2 of {1, 2, 3}, following a leader (1) that the test plays. */
async function startFollower(dataDir: string, random: (bound: number) => number): Promise<{ node: RaftNode; transport: CapturingTransport }> {
  const transport = new CapturingTransport(2);
  const node = await RaftNode.start({
    id: 2,
    dataDir,
    stateMachine: new RecordingStateMachine(),
    transport,
    logger: testLogger,
    members: [1, 2, 3].map((id) => ({ id, address: `127.0.0.1:${id}` })),
    bootstrap: true,
    // Time stands still: no election, no read deadline.
    clock: new FakeClock(),
    random,
  });
  transport.deliver(newMessage({ type: "heartbeat", from: 1, to: 2, term: leaderTerm, commit: 1 }));
  // A read started before the node reports its new leader would fail at that report.
  await waitFor("leader 1 known", () => node.status().leader === 1);
  return { node, transport };
}

/** Starts a read on `node` and returns the context it forwarded to the leader. */
async function forwardRead(node: RaftNode, transport: CapturingTransport): Promise<{ context: Uint8Array; done: Promise<number> }> {
  const done = node.readIndex();
  const forwarded = await waitFor("the read forwarded to the leader", () => transport.sent.find((sent) => sent.type === "read-index"));
  return { context: forwarded.context, done };
}

test("a read context is unique across two runs of a node, so a late answer to the old run's read leaves the new one waiting", async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), "shoal-raft-read-context-"));
  t.after(() => rm(dataDir, { recursive: true, force: true }));
  // One random source for both runs, as crypto.randomInt is in production.
  const random = seededRandom(7);

  const first = await startFollower(dataDir, random);
  const oldRead = await forwardRead(first.node, first.transport);
  const oldReadFailed = assert.rejects(oldRead.done);
  await first.node.close();
  await oldReadFailed;

  const second = await startFollower(dataDir, random);
  t.after(() => second.node.close());
  const newRead = await forwardRead(second.node, second.transport);
  assert.notDeepEqual(newRead.context, oldRead.context);
  let settled = false;
  const markSettled = (): void => {
    settled = true;
  };
  newRead.done.then(markSettled, markSettled);

  // The leader's answer to the old read arrives now, with the read index of its time. The
  // answer to a heartbeat sent after it shows when the node has handled both.
  second.transport.deliver(newMessage({ type: "read-index-resp", from: 1, to: 2, term: leaderTerm, index: 1, context: oldRead.context }));
  const marker = new TextEncoder().encode("after the late answer");
  second.transport.deliver(newMessage({ type: "heartbeat", from: 1, to: 2, term: leaderTerm, commit: 1, context: marker }));
  await waitFor("the heartbeat answered", () =>
    second.transport.sent.some((sent) => sent.type === "heartbeat-resp" && Buffer.from(sent.context).equals(marker)),
  );
  assert.equal(settled, false, "the old run's answer completed the new run's read");

  second.transport.deliver(newMessage({ type: "read-index-resp", from: 1, to: 2, term: leaderTerm, index: 1, context: newRead.context }));
  assert.equal(await newRead.done, 1);
});
