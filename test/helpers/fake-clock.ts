import { sleepOnTimer, type Clock } from "../../src/common/clock.js";

interface FakeTimer {
  dueAt: number;
  /** Creation order, so timers due at the same instant run in the order they were set. */
  sequence: number;
  callback: () => void;
}

/**
 * A deterministic Clock for tests: time moves only when `advance` is called, and timers
 * (setTimer and sleep) run in due order with `now()` set to their due time, so code that
 * re-arms a timer from a callback sees the time it would see in production.
 */
export class FakeClock implements Clock {
  #now: number;
  #sequence = 0;
  readonly #timers = new Set<FakeTimer>();

  constructor(start = 1_700_000_000_000) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  /** How many timers and sleeps are waiting. */
  get pendingTimers(): number {
    return this.#timers.size;
  }

  /** When the earliest waiting timer is due, or undefined when none is waiting. */
  nextDueAt(): number | undefined {
    return this.#earliest()?.dueAt;
  }

  setTimer(ms: number, callback: () => void): () => void {
    const timer: FakeTimer = { dueAt: this.#now + Math.max(0, ms), sequence: this.#sequence++, callback };
    this.#timers.add(timer);
    return () => {
      this.#timers.delete(timer);
    };
  }

  sleep(ms: number, options: { signal?: AbortSignal } = {}): Promise<void> {
    return sleepOnTimer(this, ms, options.signal);
  }

  /**
   * Moves time forward by `ms`, running every timer due by then (including timers set by
   * those callbacks) in due order. Promise continuations of the callbacks run after this
   * returns: await a condition afterwards, not a fixed number of ticks.
   */
  advance(ms: number): void {
    if (!(ms >= 0)) throw new RangeError(`advance takes a non-negative duration, not ${ms}`);
    const target = this.#now + ms;
    for (;;) {
      const timer = this.#earliest();
      if (timer === undefined || timer.dueAt > target) break;
      this.#timers.delete(timer);
      this.#now = Math.max(this.#now, timer.dueAt);
      timer.callback();
    }
    this.#now = target;
  }

  #earliest(): FakeTimer | undefined {
    let earliest: FakeTimer | undefined;
    for (const timer of this.#timers) {
      if (earliest === undefined || timer.dueAt < earliest.dueAt || (timer.dueAt === earliest.dueAt && timer.sequence < earliest.sequence)) {
        earliest = timer;
      }
    }
    return earliest;
  }
}
