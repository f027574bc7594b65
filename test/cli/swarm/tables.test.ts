import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { filtersParam, formatNodeTable, updatedNodeSpec } from "../../../src/cli/commands/node.js";
import {
  convergenceSnapshot,
  formatServiceTable,
  formatTaskTable,
  humanDuration,
  logContextText,
  splitLogDetails,
} from "../../../src/cli/commands/service.js";

const now = Date.parse("2026-01-01T12:00:00Z");
const ago = (seconds: number): string => new Date(now - seconds * 1000).toISOString();

function task(id: string, slot: number, state: string, options: { desired?: string; err?: string; created?: number; node?: string; ports?: unknown[] } = {}) {
  return {
    ID: id,
    CreatedAt: ago(options.created ?? 60),
    ServiceID: "svc1",
    Slot: slot,
    NodeID: options.node ?? "node1",
    DesiredState: options.desired ?? "running",
    Spec: { ContainerSpec: { Image: "busybox:1.36@sha256:" + "a".repeat(64) } },
    Status: { Timestamp: ago(5), State: state, Message: state, ...(options.err === undefined ? {} : { Err: options.err }), PortStatus: options.ports === undefined ? {} : { Ports: options.ports } },
  };
}

describe("CLI tables", () => {
  test("service ls: ID NAME MODE REPLICAS IMAGE PORTS", () => {
    const text = formatServiceTable([
      {
        ID: "abcdefghijklmnopqrstuvwxy",
        Spec: {
          Name: "web",
          Mode: { Replicated: { Replicas: 3 } },
          TaskTemplate: { ContainerSpec: { Image: "nginx:1.25@sha256:" + "b".repeat(64) }, Placement: { MaxReplicas: 2 } },
          EndpointSpec: { Ports: [{ Protocol: "tcp", TargetPort: 80, PublishedPort: 8080, PublishMode: "ingress" }] },
        },
        ServiceStatus: { RunningTasks: 2, DesiredTasks: 3 },
      },
      { ID: "zzzzzzzzzzzzzzzzzzzzzzzzz", Spec: { Name: "agent", Mode: { Global: {} }, TaskTemplate: { ContainerSpec: { Image: "busybox" } } }, ServiceStatus: { RunningTasks: 1, DesiredTasks: 1 } },
    ]);
    assert.equal(
      text,
      [
        "ID             NAME    MODE         REPLICAS               IMAGE        PORTS",
        "abcdefghijkl   web     replicated   2/3 (max 2 per node)   nginx:1.25   *:8080->80/tcp",
        "zzzzzzzzzzzz   agent   global       1/1                    busybox",
        "",
      ].join("\n"),
    );
  });

  test("service ps: slots grouped newest first, pending explanation shown whole", () => {
    const explanation = "no suitable node (insufficient memory on 2 nodes; constraint not met on 1 node)";
    const text = formatTaskTable(
      [
        task("t-old-1111111111", 1, "failed", { desired: "shutdown", err: "task: non-zero exit (1) after a long time running", created: 120 }),
        task("t-new-1111111111", 1, "running", { created: 30, ports: [{ Protocol: "udp", TargetPort: 53, PublishedPort: 53, PublishMode: "host" }] }),
        task("t-pending-222222", 2, "pending", { err: explanation, node: "" }),
        task("t-ten-1010101010", 10, "running"),
      ],
      { noTrunc: false, nowMs: now, serviceNames: new Map([["svc1", "web"]]), nodeNames: new Map([["node1", "alpha"]]) },
    );
    const lines = text.split("\n");
    assert.match(lines[0] ?? "", /^ID\s+NAME\s+IMAGE\s+NODE\s+DESIRED STATE\s+CURRENT STATE\s+ERROR\s+PORTS$/u);
    assert.match(lines[1] ?? "", /^t-new-111111\s+web\.1\s+busybox:1\.36\s+alpha\s+Running\s+Running 5 seconds ago\s+\*:53->53\/udp$/u);
    assert.match(lines[2] ?? "", /^t-old-111111\s+\\_ web\.1\s+busybox:1\.36\s+alpha\s+Shutdown\s+Failed 5 seconds ago\s+"task: non-zero exit \(1\) after…"$/u);
    assert.ok(lines[3]?.includes(`web.2`) === true && lines[3].includes(`"${explanation}"`), lines[3]);
    assert.match(lines[4] ?? "", /web\.10/u);
  });

  test("node ls marks this node and shows manager status", () => {
    const text = formatNodeTable(
      [
        { ID: "m1", Description: { Hostname: "alpha", Engine: { EngineVersion: "0.1.0" } }, Status: { State: "ready" }, Spec: { Availability: "active" }, ManagerStatus: { Leader: true, Reachability: "reachable" } },
        { ID: "w1", Description: { Hostname: "beta", Engine: { EngineVersion: "0.1.0" } }, Status: { State: "down" }, Spec: { Availability: "drain" } },
      ],
      "m1",
    );
    assert.equal(
      text,
      [
        "ID     HOSTNAME   STATUS   AVAILABILITY   MANAGER STATUS   ENGINE VERSION",
        "m1 *   alpha      Ready    Active         Leader           0.1.0",
        "w1     beta       Down     Drain                           0.1.0",
        "",
      ].join("\n"),
    );
  });

  test("node update spec and filters", () => {
    const spec = updatedNodeSpec({ Labels: { zone: "a", old: "x" }, Role: "worker", Availability: "active" }, { availability: "drain", labelAdd: ["zone=b", "ssd"], labelRm: ["old"] });
    assert.deepEqual(spec, { Labels: { zone: "b", ssd: "" }, Role: "worker", Availability: "drain" });
    assert.throws(() => updatedNodeSpec({ Labels: {} }, { labelAdd: [], labelRm: ["missing"] }), /doesn't exist/);
    assert.equal(filtersParam(["role=manager", "name=a", "name=b"]), '{"role":{"manager":true},"name":{"a":true,"b":true}}');
    assert.equal(filtersParam([]), undefined);
    assert.throws(() => filtersParam(["role"]), /key=value/);
  });

  test("human durations as docker prints them", () => {
    assert.equal(humanDuration(500), "Less than a second");
    assert.equal(humanDuration(1_000), "1 second");
    assert.equal(humanDuration(45_000), "45 seconds");
    assert.equal(humanDuration(90_000), "About a minute");
    assert.equal(humanDuration(30 * 60_000), "30 minutes");
    assert.equal(humanDuration(3 * 3600_000), "3 hours");
    assert.equal(humanDuration(3 * 24 * 3600_000), "3 days");
  });

  test("log context from docker's detail attributes", () => {
    const { details, line, timestamp } = splitLogDetails("2026-01-01T00:00:00.000Z com.docker.swarm.node.id=n1,com.docker.swarm.service.id=s1,com.docker.swarm.task.id=abcdefghijklmnop hello world\n", { timestamps: true });
    assert.equal(timestamp, "2026-01-01T00:00:00.000Z");
    assert.equal(line, "hello world\n");
    assert.equal(logContextText(details, { service: "web", slot: 2, node: "alpha" }, { noTaskIds: false, noTrunc: false }), "web.2.abcdefghijkl@alpha");
    assert.equal(logContextText(details, { service: "web", slot: 2, node: "alpha" }, { noTaskIds: true, noTrunc: false }), "web.2@alpha");
  });
});

describe("convergence display", () => {
  const replicated = { Spec: { Mode: { Replicated: { Replicas: 3 } } } };

  test("counts running slots and draws docker's bars", () => {
    const snapshot = convergenceSnapshot(replicated, [task("a", 1, "running"), task("b", 2, "preparing"), task("c2", 3, "running", { created: 10 }), task("c1", 3, "failed", { created: 50 })], { elapsedMs: 0 });
    assert.equal(snapshot.lines[0], "overall progress: 2 out of 3 tasks");
    assert.equal(snapshot.lines[1], `1/3: running   [${"=".repeat(49)}>]`);
    assert.match(snapshot.lines[2] ?? "", /^2\/3: preparing \[=+> +\]$/u);
    assert.equal(snapshot.lines[3], `3/3: running   [${"=".repeat(49)}>]`);
    assert.equal(snapshot.converged, false);
    const done = convergenceSnapshot(replicated, [task("a", 1, "running"), task("b", 2, "running"), task("c", 3, "running")], { elapsedMs: 0 });
    assert.equal(done.converged, true);
    assert.equal(done.lines[0], "overall progress: 3 out of 3 tasks");
  });

  test("a failed slot shows its error; a missing slot blocks convergence", () => {
    const snapshot = convergenceSnapshot(replicated, [task("a", 1, "rejected", { err: "image not found" }), task("b", 2, "running")], { elapsedMs: 0 });
    assert.equal(snapshot.lines[1], "1/3: image not found");
    assert.equal(snapshot.lines[3], "3/3: ");
    assert.equal(snapshot.converged, false);
  });

  test("global services converge once every node's task runs, or when no node takes one", () => {
    const global = { Spec: { Mode: { Global: {} } } };
    const running = convergenceSnapshot(global, [task("a", 0, "running", { node: "n1" }), task("b", 0, "starting", { node: "n2" })], { elapsedMs: 0 });
    assert.equal(running.lines[0], "overall progress: 1 out of 2 tasks");
    assert.equal(running.converged, false);
    assert.equal(convergenceSnapshot(global, [], { elapsedMs: 0 }).converged, false);
    assert.equal(convergenceSnapshot(global, [], { elapsedMs: 10_000 }).converged, true);
  });
});
