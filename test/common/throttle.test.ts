import assert from "node:assert/strict";
import { test } from "node:test";

import { Throttle } from "../../src/common/throttle.js";
import { FakeClock } from "../helpers/fake-clock.js";

const intervalMs = 50;

function throttle(clock: FakeClock): { throttle: Throttle; runs: number[] } {
  const runs: number[] = [];
  const start = clock.now();
  return { throttle: new Throttle({ clock, intervalMs, run: () => runs.push(clock.now() - start) }), runs };
}

test("a change after a quiet spell runs on the next timer turn, with the changes of its turn", () => {
  const clock = new FakeClock();
  const { throttle: changes, runs } = throttle(clock);
  changes.note();
  changes.note();
  changes.note();
  clock.advance(0);
  assert.deepEqual(runs, [0]);
});

test("the last change of a burst waits only for the rest of the interval since the previous run", () => {
  const clock = new FakeClock();
  const { throttle: changes, runs } = throttle(clock);
  changes.note();
  clock.advance(0);
  clock.advance(40);
  changes.note();
  clock.advance(9);
  assert.deepEqual(runs, [0], "held while the last run is younger than the interval");
  clock.advance(1);
  // A debounce would have held this change until 90, a quiet gap after it.
  assert.deepEqual(runs, [0, 50]);
});

test("a steady stream of changes runs once per interval", () => {
  const clock = new FakeClock();
  const { throttle: changes, runs } = throttle(clock);
  changes.ranNow();
  for (let step = 0; step < 20; step += 1) {
    clock.advance(10);
    changes.note();
  }
  assert.deepEqual(runs, [50, 100, 150, 200]);
});

test("ranNow covers the waiting changes and restarts the interval; cancel forgets them", () => {
  const clock = new FakeClock();
  const { throttle: changes, runs } = throttle(clock);
  clock.advance(100);
  changes.ranNow();
  changes.note();
  changes.ranNow();
  clock.advance(100);
  assert.deepEqual(runs, [], "the change was covered by the caller's own run");
  changes.ranNow();
  clock.advance(30);
  changes.note();
  clock.advance(19);
  assert.deepEqual(runs, [], "the caller's run started a new interval");
  changes.cancel();
  clock.advance(1_000);
  assert.deepEqual(runs, []);
  assert.equal(clock.pendingTimers, 0);
});
