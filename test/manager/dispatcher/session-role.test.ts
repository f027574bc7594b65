import assert from "node:assert/strict";
import { test, type TestContext } from "node:test";

import { systemClock } from "../../../src/common/clock.js";
import type { DispatcherClient } from "../../../src/gen/shoal/v1/Dispatcher.js";
import type { SessionMessage__Output } from "../../../src/gen/shoal/v1/SessionMessage.js";
import type { NodeAvailability } from "../../../src/manager/objects/index.js";
import { waitFor } from "../../helpers/wait.js";
import { newNode } from "../store/fixtures.js";
import { updateNode } from "../orchestrator/fixtures.js";
import { StreamRecorder, defer, dispatcherClient, nodeMetadata, startManager, testDescription, unary, type Manager } from "./harness.js";

// A heartbeat period far beyond the test: every message seen here was pushed by a store change.
const quietHeartbeatMs = 60_000;

async function manager(t: TestContext): Promise<{ manager: Manager; client: DispatcherClient }> {
  const started = await startManager({ clock: systemClock, heartbeatPeriodMs: quietHeartbeatMs });
  const client = dispatcherClient(started.address);
  defer(t, async () => {
    client.close();
    await started.close();
  });
  return { manager: started, client };
}

async function openSession(t: TestContext, client: DispatcherClient, nodeId: string): Promise<StreamRecorder<SessionMessage__Output>> {
  const session = new StreamRecorder(client.Session({ description: testDescription }, nodeMetadata(nodeId)));
  defer(t, () => session.call.cancel());
  await waitFor("the session's first message", () => session.messages[0] ?? (session.error === undefined ? undefined : Promise.reject(session.error)));
  return session;
}

/** The node as the CA registers it at join: no description yet, state unknown. */
async function registerJoiningNode(started: Manager, nodeId: string, availability: NodeAvailability): Promise<void> {
  await started.store.update((tx) => {
    const node = newNode(nodeId, "host1");
    tx.create("node", { id: node.id, spec: { ...node.spec, availability }, status: { state: "unknown", addr: "", message: "certificate issued" } });
  });
}

function availabilityOf(started: Manager, nodeId: string): NodeAvailability | undefined {
  return started.store.view((tx) => tx.get("node", nodeId))?.spec.availability;
}

test("the session tells the node its desired role at once, and again as soon as it changes", async (t) => {
  const { manager: started, client } = await manager(t);
  const session = await openSession(t, client, "node1");
  assert.equal(session.messages[0]?.role, "worker");
  await updateNode(started.store, "node1", (node) => ({ ...node, spec: { ...node.spec, role: "manager" } }));
  const promoted = await waitFor("a session message with the new role", () => session.messages[1]);
  assert.equal(promoted.role, "manager");
  assert.equal(promoted.sessionId, session.messages[0]?.sessionId);
  // A change that leaves the role and the managers alone sends nothing.
  await updateNode(started.store, "node1", (node) => ({ ...node, spec: { ...node.spec, labels: { zone: "a" } } }));
  await updateNode(started.store, "node1", (node) => ({ ...node, spec: { ...node.spec, role: "worker" } }));
  const demoted = await waitFor("a session message for the demotion", () => session.messages[2]);
  assert.equal(demoted.role, "worker");
  assert.equal(session.messages.length, 3);
});

test("a session never changes the availability the node was registered with", async (t) => {
  const { manager: started, client } = await manager(t);
  await registerJoiningNode(started, "node1", "drain");
  await openSession(t, client, "node1");
  assert.equal(availabilityOf(started, "node1"), "drain");
  await openSession(t, client, "node2");
  assert.equal(availabilityOf(started, "node2"), "active", "a node the session creates is active");
});

test("session messages carry each manager's reachability as the leader sees it, re-sent when it changes", async (t) => {
  let reachability: "reachable" | "unreachable" = "reachable";
  const started = await startManager({
    clock: systemClock,
    heartbeatPeriodMs: quietHeartbeatMs,
    managers: () => [{ nodeId: "m1", addr: "10.0.0.1:4242", reachability }],
  });
  const client = dispatcherClient(started.address);
  defer(t, async () => {
    client.close();
    await started.close();
  });
  const session = await openSession(t, client, "node1");
  assert.deepEqual(session.messages[0]?.managers, [{ nodeId: "m1", addr: "10.0.0.1:4242", reachability: "reachable" }]);
  reachability = "unreachable";
  const sessionId = session.messages[0]?.sessionId ?? "";
  // The leader's view changes without a store event: the next heartbeat carries it.
  await unary((callback) => client.Heartbeat({ sessionId }, nodeMetadata("node1"), callback));
  const changed = await waitFor("a session message with the new reachability", () => session.messages[1]);
  assert.equal(changed.managers[0]?.reachability, "unreachable");
});
