import assert from "node:assert/strict";
import { test } from "node:test";

import { parseImageConfigDocument } from "../../../src/engine/images/manifest.js";

const diffId = `sha256:${"a".repeat(64)}`;

function config(healthcheck: unknown): Buffer {
  return Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [diffId] }, config: { Healthcheck: healthcheck } }));
}

test("an image's health check keeps every duration, the Docker 25 start interval included", () => {
  const parsed = parseImageConfigDocument(config({ Test: ["CMD", "true"], Interval: 3e9, Timeout: 1e9, StartPeriod: 5e9, StartInterval: 5e8, Retries: 2 }));
  assert.deepEqual(parsed.config.healthcheck, { test: ["CMD", "true"], intervalNs: 3e9, timeoutNs: 1e9, startPeriodNs: 5e9, startIntervalNs: 5e8, retries: 2 });
  // Images built before Docker 25 have no start interval: 0, the default.
  assert.equal(parseImageConfigDocument(config({ Test: ["CMD", "true"] })).config.healthcheck?.startIntervalNs, 0);
  assert.throws(() => parseImageConfigDocument(config({ Test: ["CMD", "true"], StartInterval: -1 })), /StartInterval is not a duration/);
});
