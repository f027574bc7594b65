import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

import { systemClock } from "../../src/common/clock.js";
import type { NodeRole } from "../../src/manager/objects/index.js";
import { createAgent } from "../../src/worker/index.js";
import { waitFor } from "../helpers/wait.js";
import { defer, silentLogger, startManager, testNodeIdHeader } from "../manager/dispatcher/harness.js";
import { newNode } from "../manager/store/fixtures.js";
import { FakeEngine } from "./fake-executor.js";

test("the agent hears its desired role and the managers' reachability from its session", async (t) => {
  const manager = await startManager({ clock: systemClock, heartbeatPeriodMs: 60_000, managers: () => [{ nodeId: "m1", addr: "127.0.0.1:1", reachability: "unreachable" }] });
  defer(t, () => manager.close());
  const dir = await mkdtemp(join(tmpdir(), "shoal-agent-role-"));
  defer(t, () => rm(dir, { recursive: true, force: true }));
  // As the CA registers a joining node: no description and no session yet.
  await manager.store.update((tx) => {
    const node = newNode("node1", "host1");
    tx.create("node", { id: node.id, spec: node.spec, status: { state: "unknown", addr: "", message: "" } });
  });
  const roles: NodeRole[] = [];
  const reachability: string[] = [];
  const agent = createAgent({
    dataDir: dir,
    managers: [manager.address],
    executor: new FakeEngine().executor(),
    logger: silentLogger,
    callMetadata: { [testNodeIdHeader]: "node1" },
    onDesiredRole: (role) => roles.push(role),
    onManagerReachability: (managers) => reachability.push(JSON.stringify([...managers])),
  });
  await agent.start();
  defer(t, () => agent.stop());
  await waitFor("the session's role", () => (roles.length > 0 ? true : undefined));
  assert.deepEqual(roles, ["worker"]);
  assert.deepEqual(reachability, [JSON.stringify([["m1", "unreachable"]])]);
  await manager.store.update((tx) => {
    const node = tx.get("node", "node1");
    assert.ok(node !== undefined);
    tx.update("node", { ...node, spec: { ...node.spec, role: "manager" } });
  });
  await waitFor("the promotion to reach the agent", () => (roles.length > 1 ? true : undefined));
  assert.deepEqual(roles, ["worker", "manager"]);
});
