import type { Clock } from "./clock.js";

/**
 * Turns a stream of changes into few runs of `run` (commits, scheduling passes, pushes):
 * at most one run per `intervalMs`, and each change runs within `intervalMs` of the run
 * before it. A change when the last run is `intervalMs` old or more runs on the next timer
 * turn, with the other changes of its turn; a sooner one waits out the rest of the
 * interval, with every change that follows it.
 *
 * A debounce (run once changes pause) batches as well, but it holds the last change of a
 * burst for a whole gap after it, and a rollout or a converge is a chain of such bursts:
 * each hop paid the gap. Here the wait is bounded by the interval since the last run,
 * while a steady stream still runs only once per interval.
 */
export class Throttle {
  readonly #clock: Clock;
  readonly #intervalMs: number;
  readonly #run: () => void;
  #lastRunAt = Number.NEGATIVE_INFINITY;
  #cancelTimer: (() => void) | undefined;

  constructor(options: { clock: Clock; intervalMs: number; run: () => void }) {
    this.#clock = options.clock;
    this.#intervalMs = options.intervalMs;
    this.#run = options.run;
  }

  /** Records a change: arms the timer of the next run unless one is already due. */
  note(): void {
    if (this.#cancelTimer !== undefined) return;
    const delayMs = Math.max(0, this.#lastRunAt + this.#intervalMs - this.#clock.now());
    this.#cancelTimer = this.#clock.setTimer(delayMs, () => {
      this.#cancelTimer = undefined;
      this.ranNow();
      this.#run();
    });
  }

  /** The caller ran by other means (a first pass, a retry), covering every change so far. */
  ranNow(): void {
    this.cancel();
    this.#lastRunAt = this.#clock.now();
  }

  /** Forgets waiting changes and stops the timer (shutdown). */
  cancel(): void {
    this.#cancelTimer?.();
    this.#cancelTimer = undefined;
  }
}
