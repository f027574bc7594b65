import assert from "node:assert/strict";
import { test } from "node:test";

import { parseServiceSpec, type Node, type Task } from "../../../src/manager/objects/index.js";
import { buildNodeInfos, scheduleTasks, type SchedulerNode, type SchedulerTask } from "../../../src/scheduler/index.js";

const meta = { version: 1, createdAt: 0, updatedAt: 0 };

test("the manager's Node and Task feed the scheduler as they are", () => {
  const node: Node = {
    id: "n1",
    meta,
    spec: { name: "", labels: { zone: "east" }, role: "worker", availability: "active" },
    description: {
      hostname: "h1",
      platform: { os: "linux", architecture: "amd64" },
      resources: { nanoCPUs: 1_000_000_000, memoryBytes: 1 << 30 },
      engine: { engineVersion: "0.1.0", labels: {} },
    },
    status: { state: "ready", addr: "", message: "" },
  };
  const spec = parseServiceSpec({
    name: "web",
    taskTemplate: { containerSpec: { image: "busybox" }, placement: { constraints: ["node.labels.zone==east"] } },
  });
  const task: Task = {
    id: "t1",
    meta,
    serviceId: "s1",
    serviceName: "web",
    slot: 1,
    nodeId: "",
    desiredState: "running",
    spec: spec.taskTemplate,
    specVersion: 1,
    endpoint: spec.endpointSpec,
    attempt: 0,
    status: { state: "pending", timestamp: 0, message: "", err: "" },
  };
  const schedulerNode: SchedulerNode = node;
  const schedulerTask: SchedulerTask = task;
  const result = scheduleTasks(buildNodeInfos([schedulerNode], []), [schedulerTask]);
  assert.equal(result.assignments.get("t1"), "n1");
});
