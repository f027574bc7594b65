import type { Clock } from "../../common/clock.js";

/**
 * One timer per object id that starts async work when due, for orchestrators that act
 * later (a delayed restart, the updater's next batch). Arming a key replaces its timer;
 * the work a timer starts is tracked, so that stop() cancels what is pending and waits for
 * what already runs.
 */
export class KeyedTimers {
  readonly #clock: Clock;
  readonly #timers = new Map<string, { dueAt: number; cancel: () => void }>();
  readonly #inflight = new Set<Promise<void>>();

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  /** Timers armed and not yet fired. */
  get size(): number {
    return this.#timers.size;
  }

  has(key: string): boolean {
    return this.#timers.has(key);
  }

  /** When `key`'s timer fires; undefined when none is armed. */
  dueAt(key: string): number | undefined {
    return this.#timers.get(key)?.dueAt;
  }

  /** Runs `work` at `dueAt` (at once when it has passed), replacing `key`'s armed timer. */
  arm(key: string, dueAt: number, work: () => Promise<void>): void {
    this.cancel(key);
    const cancel = this.#clock.setTimer(Math.max(0, dueAt - this.#clock.now()), () => {
      this.#timers.delete(key);
      this.track(work());
    });
    this.#timers.set(key, { dueAt, cancel });
  }

  cancel(key: string): void {
    this.#timers.get(key)?.cancel();
    this.#timers.delete(key);
  }

  /** Counts `work` as in flight until it settles, so stop() waits for it. */
  track(work: Promise<void>): void {
    this.#inflight.add(work);
    void work.finally(() => this.#inflight.delete(work));
  }

  /** Cancels every armed timer and waits for the work already started. */
  async stop(): Promise<void> {
    for (const timer of this.#timers.values()) timer.cancel();
    this.#timers.clear();
    await Promise.allSettled([...this.#inflight]);
  }
}
