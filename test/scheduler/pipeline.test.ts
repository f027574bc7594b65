import assert from "node:assert/strict";
import { test } from "node:test";

import { buildNodeInfos, Pipeline, scheduleTasks } from "../../src/scheduler/index.js";
import { gib, makeNode, makeTask } from "./fixtures.js";

test("the pipeline counts each node against the first filter that refuses it", () => {
  const nodes = buildNodeInfos(
    [
      makeNode("small1", { memoryBytes: 1 * gib }),
      makeNode("small2", { memoryBytes: 1 * gib }),
      makeNode("wrong-zone", { labels: { zone: "west" } }),
      makeNode("down", { state: "down" }),
      makeNode("good", { labels: { zone: "east" } }),
    ],
    [],
  );
  const pipeline = new Pipeline();
  pipeline.setTask(makeTask("t", "s", { memoryBytes: 2 * gib, constraints: ["node.labels.zone==east"] }));
  assert.deepEqual(
    nodes.filter((node) => pipeline.process(node)).map((node) => node.id),
    ["good"],
  );
  assert.equal(
    pipeline.explain(),
    "1 node not available for new tasks; insufficient resources on 2 nodes; scheduling constraints not satisfied on 1 node",
  );
  pipeline.setTask(makeTask("t2", "s"));
  assert.equal(pipeline.explain(), "", "setTask resets the counts");
});

test("an unschedulable task's explanation comes from the pipeline", () => {
  const nodes = buildNodeInfos([makeNode("a", { memoryBytes: gib }), makeNode("b", { memoryBytes: gib }), makeNode("c", { labels: {} })], []);
  const result = scheduleTasks(nodes, [makeTask("t", "s", { memoryBytes: 2 * gib, constraints: ["node.labels.zone==east"] })]);
  assert.equal(result.assignments.size, 0);
  assert.equal(
    result.unschedulable.get("t"),
    "no suitable node (insufficient resources on 2 nodes; scheduling constraints not satisfied on 1 node)",
  );
  assert.equal(scheduleTasks([], [makeTask("u", "s")]).unschedulable.get("u"), "no suitable node (no nodes in the cluster)");
});
