import { addAbortListener } from "node:events";

import { CancelledError } from "./errors.js";

/**
 * Time as an input. Logic takes a Clock instead of calling Date.now or setTimeout, so
 * tests drive it with a fake and stay deterministic.
 */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
  /** Resolves after `ms`; rejects with CancelledError when the signal fires first. */
  sleep(ms: number, options?: { signal?: AbortSignal }): Promise<void>;
  /** Calls `callback` after `ms` unless the returned function is called first. */
  setTimer(ms: number, callback: () => void): () => void;
}

/** Node's timers hold at most 2^31 - 1 ms (about 24.8 days); a longer delay fires after 1 ms. */
export const timerDelayMsMax = 2 ** 31 - 1;

/**
 * Clock.sleep for any clock: resolves when the clock's timer fires, rejects with
 * CancelledError when `signal` fires first (and cancels the timer).
 */
export function sleepOnTimer(clock: Pick<Clock, "setTimer">, ms: number, signal: AbortSignal | undefined): Promise<void> {
  if (signal?.aborted === true) return Promise.reject(new CancelledError("sleep cancelled", { cause: signal.reason }));
  return new Promise((resolve, reject) => {
    const cancel = clock.setTimer(ms, () => {
      listener?.[Symbol.dispose]();
      resolve();
    });
    const listener =
      signal === undefined
        ? undefined
        : addAbortListener(signal, () => {
            cancel();
            reject(new CancelledError("sleep cancelled", { cause: signal.reason }));
          });
  });
}

class SystemClock implements Clock {
  now(): number {
    return Date.now();
  }

  sleep(ms: number, options: { signal?: AbortSignal } = {}): Promise<void> {
    return sleepOnTimer(this, ms, options.signal);
  }

  /** Delays beyond timerDelayMsMax (certificate renewal waits weeks) are waited in steps. */
  setTimer(ms: number, callback: () => void): () => void {
    let timer: NodeJS.Timeout;
    const arm = (remainingMs: number): void => {
      const stepMs = Math.min(Math.max(0, remainingMs), timerDelayMsMax);
      timer = setTimeout(() => {
        if (remainingMs > timerDelayMsMax) arm(remainingMs - stepMs);
        else callback();
      }, stepMs);
    };
    arm(ms);
    return () => clearTimeout(timer);
  }
}

export const systemClock: Clock = new SystemClock();
