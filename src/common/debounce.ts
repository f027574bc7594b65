import type { Clock } from "./clock.js";

export interface DebounceTiming {
  /** Within a burst, a run waits until no change came for this long (STYLE §9)... */
  readonly gapMs: number;
  /** ...but never longer than this after the first change it waits on. */
  readonly latencyMsMax: number;
}

/**
 * Turns bursts of changes into few runs of `run` (commits, scheduling passes, pushes).
 * A change after a quiet spell, when nothing ran for `gapMs`, runs on the next timer turn:
 * a lone change is not held back by a gap that has nothing to batch. Changes that follow
 * it within the gap are batched as usual: a run waits `gapMs` after the last of them and
 * at most `latencyMsMax` after the first, so the rate of runs stays bounded under load.
 */
export class Debouncer {
  readonly #clock: Clock;
  readonly #timing: DebounceTiming;
  readonly #run: () => void;
  #firstAt: number | undefined;
  #lastRunAt = Number.NEGATIVE_INFINITY;
  #leading = false;
  #cancelTimer: (() => void) | undefined;

  constructor(options: { clock: Clock; timing: DebounceTiming; run: () => void }) {
    this.#clock = options.clock;
    this.#timing = options.timing;
    this.#run = options.run;
  }

  /** Records a change: arms or moves the timer of the next run. */
  note(): void {
    const now = this.#clock.now();
    if (this.#firstAt === undefined) {
      this.#firstAt = now;
      this.#leading = now - this.#lastRunAt >= this.#timing.gapMs;
    }
    // The leading run is already due: changes of the same turn go with it.
    if (this.#leading && this.#cancelTimer !== undefined) return;
    const dueAt = this.#leading ? now : Math.min(now + this.#timing.gapMs, this.#firstAt + this.#timing.latencyMsMax);
    this.#cancelTimer?.();
    this.#cancelTimer = this.#clock.setTimer(dueAt - now, () => {
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
    this.#firstAt = undefined;
    this.#leading = false;
  }
}
