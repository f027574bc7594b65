import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

import { systemClock } from "../../../src/common/clock.js";
import { UnavailableError } from "../../../src/common/errors.js";
import { RaftNode } from "../../../src/raft/node.js";
import { createGrpcRaftTransport } from "../../../src/raft/transport/transport.js";
import { WalSyncError } from "../../../src/raft/wal/wal.js";
import { FailingFsync } from "../wal/failing-fsync.js";
import { RecordingStateMachine, testLogger, waitFor } from "./cluster.js";

test("a failed WAL fsync stops the node and reports a fatal WalSyncError", async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), "shoal-raft-fatal-"));
  t.after(() => rm(dataDir, { recursive: true, force: true }));
  const fsync = new FailingFsync();
  t.after(() => fsync.close());
  const transport = createGrpcRaftTransport({ id: 1, logger: testLogger, clock: systemClock });
  const address = await transport.listen({ host: "127.0.0.1", port: 0 });
  const fatal: Error[] = [];
  const machine = new RecordingStateMachine();
  const node = await RaftNode.start({
    id: 1,
    dataDir,
    stateMachine: machine,
    transport,
    logger: testLogger,
    members: [{ id: 1, address }],
    bootstrap: true,
    tickMs: 10,
    walOpenSegment: fsync.open,
    onFatalError: (error) => fatal.push(error),
  });
  t.after(() => node.close());
  await waitFor("single-node leader", () => node.status().role === "leader");
  await node.propose(Buffer.from("durable"));
  assert.deepEqual(machine.applied, ["durable"]);

  fsync.failing = true;
  await assert.rejects(node.propose(Buffer.from("never durable")), UnavailableError);
  await waitFor("fatal report", () => fatal.length > 0);
  assert.equal(fatal.length, 1);
  assert.ok(fatal[0] instanceof WalSyncError);
  // The entry was never acknowledged as durable, so it was never applied either.
  assert.deepEqual(machine.applied, ["durable"]);
  await assert.rejects(node.propose(Buffer.from("after the failure")), UnavailableError);
});

/** Takes the bootstrap snapshot, then fails every later one at once, as a promise. */
class FailingSnapshots extends RecordingStateMachine {
  #calls = 0;
  override snapshot(): Uint8Array | Promise<Uint8Array> {
    this.#calls += 1;
    return this.#calls === 1 ? super.snapshot() : Promise.reject(new Error("the state could not be encoded"));
  }
}

test("a state machine whose snapshot bytes fail stops the node with a fatal error, not an unhandled rejection", async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), "shoal-raft-fatal-"));
  t.after(() => rm(dataDir, { recursive: true, force: true }));
  const transport = createGrpcRaftTransport({ id: 1, logger: testLogger, clock: systemClock });
  const address = await transport.listen({ host: "127.0.0.1", port: 0 });
  const fatal: Error[] = [];
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown): void => {
    unhandled.push(reason);
  };
  process.on("unhandledRejection", onUnhandled);
  t.after(() => process.off("unhandledRejection", onUnhandled));
  const node = await RaftNode.start({
    id: 1,
    dataDir,
    stateMachine: new FailingSnapshots(),
    transport,
    logger: testLogger,
    members: [{ id: 1, address }],
    bootstrap: true,
    tickMs: 10,
    snapshotEveryEntries: 3,
    onFatalError: (error) => fatal.push(error),
  });
  t.after(() => node.close());
  await waitFor("single-node leader", () => node.status().role === "leader");
  // The third apply makes a snapshot due; its failure may stop the node before the
  // third proposal is answered.
  await Promise.allSettled([0, 1, 2].map((i) => node.propose(Buffer.from(`p${i}`))));
  await waitFor("fatal report", () => fatal.length > 0);
  assert.deepEqual(fatal.map((error) => error.message), ["the state could not be encoded"]);
  assert.deepEqual(unhandled, []);
});
