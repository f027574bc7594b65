import assert from "node:assert/strict";
import { test } from "node:test";

import { InvalidArgumentError } from "../../src/common/errors.js";
import { parseConstraint } from "../../src/scheduler/index.js";

test("constraints parse into key, operator and lower-cased value", () => {
  assert.deepEqual(parseConstraint(" node.labels.zone == East "), {
    key: { type: "node.labels", label: "zone" },
    operator: "==",
    value: "east",
    text: " node.labels.zone == East ",
  });
  assert.equal(parseConstraint("node.role!=manager").operator, "!=");
  assert.deepEqual(parseConstraint("engine.labels.disk==ssd").key, { type: "engine.labels", label: "disk" });
});

test("malformed constraints are refused with a reason", () => {
  assert.throws(() => parseConstraint("node.role=manager"), (error: unknown) => error instanceof InvalidArgumentError && /KEY==VALUE/.test(error.message));
  assert.throws(() => parseConstraint("node.labels.==x"), /label name/);
  assert.throws(() => parseConstraint("node.ip==1.2.3.4"), /unknown key/);
  assert.throws(() => parseConstraint("node.role==a==b"), /value/);
});
