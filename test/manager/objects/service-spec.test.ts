import assert from "node:assert/strict";
import { test } from "node:test";

import { InvalidArgumentError } from "../../../src/common/errors.js";
import {
  imageReferenceProblem,
  parseServiceSpec,
  serviceDefaults,
  specLimits,
  withServiceDefaults,
} from "../../../src/manager/objects/index.js";

function minimal(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return { name: "web", taskTemplate: { containerSpec: { image: "busybox:1.36" } }, ...overrides };
}

/** Asserts that parsing throws InvalidArgumentError whose message starts with the field path. */
function assertFieldError(input: unknown, field: string, detail?: RegExp): void {
  assert.throws(
    () => parseServiceSpec(input, "spec"),
    (error: unknown) => {
      assert.ok(error instanceof InvalidArgumentError, `expected InvalidArgumentError, got ${String(error)}`);
      assert.ok(error.message.startsWith(`${field}:`), `message "${error.message}" does not name ${field}`);
      if (detail !== undefined) assert.match(error.message, detail);
      return true;
    },
  );
}

test("a minimal spec gets swarm's defaults", () => {
  const spec = parseServiceSpec(minimal());
  assert.deepEqual(spec.mode, { type: "replicated", replicas: 1 });
  assert.deepEqual(spec.taskTemplate.restartPolicy, { condition: "any", delayMs: 5_000, maxAttempts: 0, windowMs: 0 });
  assert.equal(spec.updateConfig.parallelism, 1);
  assert.equal(spec.updateConfig.failureAction, "pause");
  assert.equal(spec.updateConfig.monitorMs, 5_000);
  assert.equal(spec.updateConfig.order, "stop-first");
  assert.deepEqual(spec.rollbackConfig, serviceDefaults.rollbackConfig);
  assert.equal(spec.taskTemplate.containerSpec.stopGracePeriodMs, 10_000);
  assert.deepEqual(spec.endpointSpec, { mode: "vip", ports: [] });
  assert.equal(spec.taskTemplate.containerSpec.healthcheck, undefined);
});

test("withServiceDefaults fills a partial spec and keeps what it sets", () => {
  const spec = withServiceDefaults({
    name: "api",
    mode: { type: "replicated", replicas: 7 },
    taskTemplate: { containerSpec: { image: "registry.local:5000/team/api@sha256:" + "a".repeat(64) }, restartPolicy: { condition: "on-failure" } },
    updateConfig: { order: "start-first" },
  });
  assert.deepEqual(spec.mode, { type: "replicated", replicas: 7 });
  assert.equal(spec.taskTemplate.restartPolicy.condition, "on-failure");
  assert.equal(spec.taskTemplate.restartPolicy.delayMs, 5_000);
  assert.equal(spec.updateConfig.order, "start-first");
  assert.equal(spec.updateConfig.parallelism, 1);
});

test("a full spec round-trips through the parser unchanged", () => {
  const spec = parseServiceSpec(
    minimal({
      labels: { tier: "front" },
      mode: { type: "global" },
      endpointSpec: { mode: "dnsrr", ports: [{ targetPort: 80, publishedPort: 8080, publishMode: "host" }] },
      taskTemplate: {
        containerSpec: { image: "nginx", env: ["A=1"], healthcheck: { test: ["CMD", "true"] }, mounts: [{ type: "tmpfs", target: "/tmp" }] },
        placement: { constraints: ["node.role==worker"], preferences: [{ spread: "node.labels.zone" }], maxReplicas: 2 },
        resources: { reservations: { nanoCPUs: 500_000_000, memoryBytes: 1 << 20 } },
      },
    }),
  );
  assert.deepEqual(parseServiceSpec(JSON.parse(JSON.stringify(spec))), spec);
  assert.deepEqual(spec.mode, { type: "global" });
  assert.equal(spec.taskTemplate.containerSpec.healthcheck?.retries, 3);
});

test("negative replicas are refused naming the field", () => {
  assertFieldError(minimal({ mode: { replicas: -1 } }), "spec.mode.replicas", /between 0 and/);
});

test("fractional replicas are refused naming the field", () => {
  assertFieldError(minimal({ mode: { replicas: 1.5 } }), "spec.mode.replicas", /whole number/);
});

test("unknown fields are refused naming the field", () => {
  assertFieldError(minimal({ replicas: 3 }), "spec.replicas", /unknown field/);
  assertFieldError(
    minimal({ taskTemplate: { containerSpec: { image: "busybox", imag: "x" } } }),
    "spec.taskTemplate.containerSpec.imag",
    /unknown field/,
  );
});

test("bad constraints are refused naming the field", () => {
  const withConstraint = (constraint: string): unknown =>
    minimal({ taskTemplate: { containerSpec: { image: "busybox" }, placement: { constraints: [constraint] } } });
  assertFieldError(withConstraint("node.labels.zone=east"), "spec.taskTemplate.placement.constraints[0]", /KEY==VALUE/);
  assertFieldError(withConstraint("node.colour==red"), "spec.taskTemplate.placement.constraints[0]", /unknown key/);
  assertFieldError(withConstraint("node.role=="), "spec.taskTemplate.placement.constraints[0]", /value/);
});

test("names that are not DNS labels are refused naming the field", () => {
  assertFieldError(minimal({ name: "web_1" }), "spec.name", /DNS label/);
  assertFieldError(minimal({ name: "-web" }), "spec.name", /DNS label/);
  assertFieldError(minimal({ name: "a".repeat(64) }), "spec.name", /at most 63 bytes/);
  assertFieldError(minimal({ name: "" }), "spec.name", /empty/);
  assert.equal(parseServiceSpec(minimal({ name: "a".repeat(63) })).name.length, 63);
});

test("oversized labels are refused naming the field", () => {
  assertFieldError(minimal({ labels: { big: "x".repeat(specLimits.labelValueBytesMax + 1) } }), "spec.labels.big", /at most/);
  assertFieldError(minimal({ labels: { ["k".repeat(specLimits.labelKeyBytesMax + 1)]: "v" } }), "spec.labels", /longer than/);
  const many = Object.fromEntries(Array.from({ length: specLimits.labelsCountMax + 1 }, (_, index) => [`l${index}`, "v"]));
  assertFieldError(minimal({ labels: many }), "spec.labels", /at most 256 labels/);
});

test("image references that do not parse are refused naming the field", () => {
  const withImage = (image: string): unknown => minimal({ taskTemplate: { containerSpec: { image } } });
  assertFieldError(withImage("Busybox"), "spec.taskTemplate.containerSpec.image", /not a valid image reference/);
  assertFieldError(withImage("busybox:"), "spec.taskTemplate.containerSpec.image", /tag/);
  assertFieldError(withImage("busybox@sha256:abc"), "spec.taskTemplate.containerSpec.image", /digest/);
  assertFieldError(withImage("team//app"), "spec.taskTemplate.containerSpec.image", /path component/);
});

test("the image reference grammar accepts docker's forms", () => {
  for (const good of ["busybox", "busybox:1.36", "library/busybox:latest", "localhost:5000/a/b", "registry.example.com/team/app_x:v1.2-rc", `app@sha256:${"0".repeat(64)}`, "127.0.0.1:5000/x:y"]) {
    assert.equal(imageReferenceProblem(good), undefined, good);
  }
  assert.notEqual(imageReferenceProblem(`${"a".repeat(256)}`), undefined);
});

test("other bad numbers and enums name their field", () => {
  assertFieldError(minimal({ updateConfig: { maxFailureRatio: 1.5 } }), "spec.updateConfig.maxFailureRatio");
  assertFieldError(minimal({ updateConfig: { failureAction: "explode" } }), "spec.updateConfig.failureAction", /pause, continue, rollback/);
  assertFieldError(minimal({ mode: { type: "global", replicas: 2 } }), "spec.mode.replicas", /global/);
  assertFieldError(
    minimal({ endpointSpec: { ports: [{ targetPort: 80, publishedPort: 8080 }, { targetPort: 81, publishedPort: 8080 }] } }),
    "spec.endpointSpec.ports[1].publishedPort",
    /published twice/,
  );
  assertFieldError(minimal({ taskTemplate: { containerSpec: { image: "busybox", env: ["NOVALUE"] } } }), "spec.taskTemplate.containerSpec.env[0]");
  assertFieldError("not an object", "spec", /must be an object/);
});
