import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { readDockerServiceSpec } from "../../../src/api/docker-swarm/index.js";
import { serviceSpecFromFlags, type ServiceCreateOptions } from "../../../src/cli/commands/service.js";
import { updatedServiceSpec, updateSnapshot } from "../../../src/cli/commands/service-update.js";
import { parseServiceSpec } from "../../../src/manager/objects/index.js";

const current = {
  Name: "web",
  Labels: {},
  TaskTemplate: {
    ContainerSpec: { Image: "busybox", Args: ["sleep", "1d"], Env: [] },
    Placement: { Constraints: ["node.role==worker"] },
    RestartPolicy: { Condition: "any", Delay: 5e9 },
    ForceUpdate: 0,
  },
  Mode: { Replicated: { Replicas: 3 } },
  UpdateConfig: { Parallelism: 1, Delay: 0, FailureAction: "pause", Monitor: 5e9, MaxFailureRatio: 0, Order: "stop-first" },
  EndpointSpec: { Mode: "vip", Ports: [{ Protocol: "tcp", TargetPort: 80, PublishedPort: 8080, PublishMode: "ingress" }] },
};

const none = { envAdd: [], envRm: [], labelAdd: [], labelRm: [] };

describe("service update flags", () => {
  test("each flag changes its own field of the current spec, and the result is a spec the daemon accepts", () => {
    const updated = updatedServiceSpec(
      current,
      {
        ...none,
        args: "sleep 2d",
        constraintAdd: ["node.labels.zone==east"],
        constraintRm: ["node.role==worker"],
        placementPrefAdd: ["spread=node.labels.zone"],
        publishAdd: ["9090:90/udp"],
        publishRm: ["80"],
        limitMemory: "64m",
        reserveCpu: "0.5",
        healthCmd: "wget -q -O- localhost",
        healthInterval: "2s",
        healthRetries: "2",
        healthStartInterval: "250ms",
        restartCondition: "on-failure",
        update: { parallelism: "3", order: "start-first", monitor: "0" },
        rollbackConfig: { failureAction: "continue" },
      },
      {},
    );
    const template = updated["TaskTemplate"] as Record<string, Record<string, unknown>>;
    assert.deepEqual(template["ContainerSpec"]?.["Args"], ["sleep", "2d"]);
    assert.deepEqual(template["ContainerSpec"]?.["Healthcheck"], { Test: ["CMD-SHELL", "wget -q -O- localhost"], Interval: 2e9, StartInterval: 2.5e8, Retries: 2 });
    assert.deepEqual(template["Placement"], { Constraints: ["node.labels.zone==east"], Preferences: [{ Spread: { SpreadDescriptor: "node.labels.zone" } }] });
    assert.deepEqual(template["RestartPolicy"], { Condition: "on-failure", Delay: 5e9 });
    assert.deepEqual(template["Resources"], { Limits: { MemoryBytes: 64 * 1024 ** 2 }, Reservations: { NanoCPUs: 5e8 } });
    assert.deepEqual(updated["UpdateConfig"], { ...current.UpdateConfig, Parallelism: 3, Order: "start-first", Monitor: 0 });
    assert.deepEqual(updated["RollbackConfig"], { FailureAction: "continue" });
    assert.deepEqual((updated["EndpointSpec"] as Record<string, unknown>)["Ports"], [{ Protocol: "udp", TargetPort: 90, PublishedPort: 9090, PublishMode: "ingress" }]);
    const spec = parseServiceSpec(readDockerServiceSpec(updated));
    assert.equal(spec.updateConfig.order, "start-first");
    assert.equal(spec.taskTemplate.containerSpec.healthcheck?.intervalMs, 2_000);
    assert.equal(spec.taskTemplate.containerSpec.healthcheck?.startIntervalMs, 250);
  });

  test("--no-healthcheck turns the image's check off and refuses --health-* next to it", () => {
    const template = updatedServiceSpec(current, { ...none, healthcheck: false }, {})["TaskTemplate"] as Record<string, Record<string, unknown>>;
    assert.deepEqual(template["ContainerSpec"]?.["Healthcheck"], { Test: ["NONE"] });
    assert.throws(() => updatedServiceSpec(current, { ...none, healthcheck: false, healthCmd: "true" }, {}), /conflicts/);
    assert.throws(() => updatedServiceSpec(current, { ...none, update: { maxFailureRatio: "2" } }, {}), /between 0 and 1/);
  });
});

test("service create takes the same health flags", () => {
  const options: ServiceCreateOptions = {
    name: "web", mode: "replicated", env: [], label: [], containerLabel: [], constraint: [], placementPref: [], publish: [], mount: [],
    healthCmd: "true", healthTimeout: "1s", healthStartPeriod: "3s", healthStartInterval: "500ms",
  };
  const spec = serviceSpecFromFlags("busybox", [], options, {});
  const container = (spec["TaskTemplate"] as Record<string, Record<string, unknown>>)["ContainerSpec"];
  assert.deepEqual(container?.["Healthcheck"], { Test: ["CMD-SHELL", "true"], Timeout: 1e9, StartPeriod: 3e9, StartInterval: 5e8 });
  const health = parseServiceSpec(readDockerServiceSpec(spec)).taskTemplate.containerSpec.healthcheck;
  assert.equal(health?.startPeriodMs, 3_000);
  assert.equal(health?.startIntervalMs, 500);
});

describe("rollout display", () => {
  const task = (id: string, slot: number, options: { env: string[]; desired: string; state: string; health?: string; createdAt: string }): Record<string, unknown> => ({
    ID: id.padEnd(25, "0"),
    Slot: slot,
    CreatedAt: options.createdAt,
    DesiredState: options.desired,
    Spec: { ContainerSpec: { Image: "busybox", Env: options.env } },
    Status: { State: options.state, ...(options.health === undefined ? {} : { Health: options.health }) },
  });
  const service = (state: string, message: string): Record<string, unknown> => ({
    Spec: { TaskTemplate: { ContainerSpec: { Image: "busybox", Env: ["V=2"] } }, Mode: { Replicated: { Replicas: 2 } } },
    ...(state === "" ? {} : { UpdateStatus: { State: state, Message: message } }),
  });
  const tasks = [
    task("old1", 1, { env: [], desired: "running", state: "running", createdAt: "2026-01-01T00:00:00Z" }),
    task("new1", 1, { env: ["V=2"], desired: "running", state: "running", health: "starting", createdAt: "2026-01-01T00:01:00Z" }),
    task("new2", 2, { env: ["V=2"], desired: "running", state: "running", health: "healthy", createdAt: "2026-01-01T00:01:00Z" }),
    task("old2", 2, { env: [], desired: "shutdown", state: "shutdown", createdAt: "2026-01-01T00:00:00Z" }),
  ];

  test("one line per slot: old -> new with state and health; the head counts slots on the current spec", () => {
    const snapshot = updateSnapshot(service("updating", "update in progress"), tasks);
    assert.deepEqual(snapshot.lines, [
      "updating: 1 out of 2 tasks on the current spec (update in progress)",
      "1/2: old100000000 running -> new100000000 running (starting)",
      "2/2: new200000000 running (healthy)",
    ]);
    assert.equal(snapshot.outcome, "rolling");
  });

  test("completed ends the display; paused stops it with the reason", () => {
    assert.equal(updateSnapshot(service("completed", "update completed"), tasks).outcome, "done");
    const paused = updateSnapshot(service("paused", "update paused: 1 of 2 updated tasks failed"), tasks);
    assert.equal(paused.outcome, "stopped");
    assert.equal(paused.message, "update paused: 1 of 2 updated tasks failed");
  });
});
