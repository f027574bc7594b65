import assert from "node:assert/strict";
import { test } from "node:test";

import { Debouncer } from "../../src/common/debounce.js";
import { FakeClock } from "../helpers/fake-clock.js";

const timing = { gapMs: 50, latencyMsMax: 200 };

function debouncer(clock: FakeClock): { debounce: Debouncer; runs: number[] } {
  const runs: number[] = [];
  const start = clock.now();
  const debounce = new Debouncer({ clock, timing, run: () => runs.push(clock.now() - start) });
  return { debounce, runs };
}

test("a change after a quiet spell runs on the next timer turn, with the changes of its turn", () => {
  const clock = new FakeClock();
  const { debounce, runs } = debouncer(clock);
  debounce.note();
  debounce.note();
  debounce.note();
  clock.advance(0);
  assert.deepEqual(runs, [0]);
});

test("changes within the gap after a run are batched until the gap passes without one", () => {
  const clock = new FakeClock();
  const { debounce, runs } = debouncer(clock);
  debounce.note();
  clock.advance(0);
  for (let step = 0; step < 3; step += 1) {
    clock.advance(10);
    debounce.note();
  }
  clock.advance(49);
  assert.deepEqual(runs, [0], "held while the gap since the last change is shorter than gapMs");
  clock.advance(1);
  assert.deepEqual(runs, [0, 80]);
});

test("a steady stream of changes runs at most latencyMsMax after the first it waited on", () => {
  const clock = new FakeClock();
  const { debounce, runs } = debouncer(clock);
  debounce.ranNow();
  for (let step = 0; step < 30; step += 1) {
    clock.advance(20);
    debounce.note();
  }
  // The first change came at 20: the run is at 220. The change noted at 220, just after
  // that run, opens the next batch, which runs at 420.
  assert.deepEqual(runs.slice(0, 2), [220, 420]);
});

test("ranNow covers the waiting changes and cancel forgets them", () => {
  const clock = new FakeClock();
  const { debounce, runs } = debouncer(clock);
  clock.advance(100);
  debounce.note();
  debounce.ranNow();
  clock.advance(100);
  assert.deepEqual(runs, [], "the change was covered by the caller's own run");
  debounce.note();
  debounce.cancel();
  clock.advance(1_000);
  assert.deepEqual(runs, []);
  assert.equal(clock.pendingTimers, 0);
});
