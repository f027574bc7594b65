import assert from "node:assert/strict";
import { setImmediate as yieldToEventLoop } from "node:timers/promises";
import { test } from "node:test";

import type { TaskHealth } from "../../src/manager/objects/index.js";
import { HealthMonitor, resolveHealthcheck, type ResolvedHealthcheck } from "../../src/worker/health-monitor.js";
import { FakeClock } from "../helpers/fake-clock.js";

const check: ResolvedHealthcheck = { command: ["/bin/sh", "-c", "probe"], intervalMs: 1_000, timeoutMs: 500, retries: 3, startPeriodMs: 0, startIntervalMs: 5_000 };

/** Lets the monitor's promise chains run after a clock step. */
async function settle(): Promise<void> {
  for (let round = 0; round < 20; round += 1) await yieldToEventLoop();
}

/** A monitor whose probe answers from `results` in turn (a number is the exit code; "hang" never answers). */
function monitorWith(options: { check?: ResolvedHealthcheck; results: Array<number | "hang"> }): { clock: FakeClock; changes: Array<[TaskHealth, string]>; monitor: HealthMonitor; probes: () => number } {
  const clock = new FakeClock();
  const changes: Array<[TaskHealth, string]> = [];
  let probes = 0;
  const monitor = new HealthMonitor({
    check: options.check ?? check,
    clock,
    probe: (_command, { signal }) => {
      const result = options.results[Math.min(probes, options.results.length - 1)];
      probes += 1;
      if (result === "hang") {
        return new Promise((_resolve, reject) => signal.addEventListener("abort", () => reject(new Error("aborted")), { once: true }));
      }
      return Promise.resolve({ exitCode: result ?? 0, output: `probe said ${result ?? 0}\n` });
    },
    onChange: (health, output) => changes.push([health, output]),
  });
  return { clock, changes, monitor, probes: () => probes };
}

async function tick(clock: FakeClock, ms: number, times = 1): Promise<void> {
  for (let index = 0; index < times; index += 1) {
    clock.advance(ms);
    await settle();
  }
}

test("a passing check makes the task healthy after one interval; retries failures in a row make it unhealthy, and then it stops", async (t) => {
  const { clock, changes, monitor, probes } = monitorWith({ results: [0, 1, 1, 0, 1, 1, 1] });
  t.after(() => monitor.stop());
  monitor.start();
  assert.equal(monitor.health, "starting");
  await tick(clock, 999);
  assert.equal(probes(), 0, "no check before the first interval");
  await tick(clock, 1);
  assert.deepEqual(changes, [["healthy", "probe said 0"]]);
  await tick(clock, 1_000, 3);
  assert.equal(monitor.health, "healthy", "two failures then a pass reset the count");
  await tick(clock, 1_000, 3);
  assert.deepEqual(changes.at(-1), ["unhealthy", "probe said 1"]);
  const probed = probes();
  await tick(clock, 1_000, 3);
  assert.equal(probes(), probed, "an unhealthy task is checked no more");
});

test("failures in the start period do not count until the check first passes", async (t) => {
  const { clock, changes, monitor } = monitorWith({ check: { ...check, retries: 1, startPeriodMs: 5_000 }, results: [1, 1, 1, 1, 1, 1] });
  t.after(() => monitor.stop());
  monitor.start();
  await tick(clock, 1_000, 4);
  assert.deepEqual(changes, [], "still starting inside the start period");
  await tick(clock, 1_000, 2);
  assert.deepEqual(changes, [["unhealthy", "probe said 1"]]);
});

test("during the start period the check runs every start interval until it passes, then every interval", async (t) => {
  const { clock, changes, monitor, probes } = monitorWith({ check: { ...check, startPeriodMs: 10_000, startIntervalMs: 100 }, results: [1, 1, 0, 0] });
  t.after(() => monitor.stop());
  monitor.start();
  await tick(clock, 99);
  assert.equal(probes(), 0);
  await tick(clock, 1);
  assert.equal(probes(), 1, "the first check comes after one start interval, not one interval");
  await tick(clock, 100, 2);
  assert.equal(probes(), 3);
  assert.deepEqual(changes, [["healthy", "probe said 0"]], "healthy 300 ms after start instead of 1 s");
  await tick(clock, 100, 9);
  assert.equal(probes(), 3, "once healthy, the start interval no longer applies");
  await tick(clock, 100);
  assert.equal(probes(), 4);
});

test("the start interval never delays the first counted check past the start period's end", async (t) => {
  const { clock, changes, monitor, probes } = monitorWith({ check: { ...check, retries: 1, intervalMs: 500, startPeriodMs: 1_000, startIntervalMs: 3_000 }, results: [1] });
  t.after(() => monitor.stop());
  monitor.start();
  await tick(clock, 999);
  assert.equal(probes(), 0);
  await tick(clock, 1);
  assert.equal(probes(), 1, "checked when the start period ends, not after a whole start interval");
  assert.deepEqual(changes, [["unhealthy", "probe said 1"]]);
});

test("a check that outlives its timeout is a failure that says so", async (t) => {
  const { clock, changes, monitor } = monitorWith({ check: { ...check, retries: 1 }, results: ["hang"] });
  t.after(() => monitor.stop());
  monitor.start();
  await tick(clock, 1_000);
  await tick(clock, 500);
  assert.deepEqual(changes, [["unhealthy", "health check timed out after 500 ms"]]);
});

test("the service spec's check wins over the image's; NONE turns it off; the image's timings are nanoseconds", () => {
  const image = { test: ["CMD", "wget", "-q", "localhost"], intervalNs: 2e9, timeoutNs: 0, startPeriodNs: 0, retries: 0 };
  assert.deepEqual(resolveHealthcheck(undefined, image), { command: ["wget", "-q", "localhost"], intervalMs: 2_000, timeoutMs: 30_000, retries: 3, startPeriodMs: 0, startIntervalMs: 5_000 });
  assert.equal(resolveHealthcheck({ test: ["NONE"], intervalMs: 0, timeoutMs: 0, retries: 0, startPeriodMs: 0, startIntervalMs: 0 }, image), undefined);
  assert.deepEqual(resolveHealthcheck({ test: ["CMD-SHELL", "test -f /ok"], intervalMs: 500, timeoutMs: 100, retries: 2, startPeriodMs: 1_000, startIntervalMs: 200 }, image), {
    command: ["/bin/sh", "-c", "test -f /ok"],
    intervalMs: 500,
    timeoutMs: 100,
    retries: 2,
    startPeriodMs: 1_000,
    startIntervalMs: 200,
  });
  assert.deepEqual(resolveHealthcheck({ test: [], intervalMs: 700, timeoutMs: 0, retries: 0, startPeriodMs: 0, startIntervalMs: 0 }, image)?.intervalMs, 700, "spec timings over the image's test");
  assert.equal(resolveHealthcheck(undefined, { ...image, startIntervalNs: 3e8 })?.startIntervalMs, 300, "an image's start interval (Docker 25+) is nanoseconds too");
  assert.equal(resolveHealthcheck(undefined, undefined), undefined);
});
