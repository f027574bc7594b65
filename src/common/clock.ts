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

class SystemClock implements Clock {
  now(): number {
    return Date.now();
  }

  sleep(ms: number, options: { signal?: AbortSignal } = {}): Promise<void> {
    const { signal } = options;
    if (signal?.aborted === true) {
      return Promise.reject(new CancelledError("sleep cancelled", { cause: signal.reason }));
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        listener?.[Symbol.dispose]();
        resolve();
      }, ms);
      const listener =
        signal === undefined
          ? undefined
          : addAbortListener(signal, () => {
              clearTimeout(timer);
              reject(new CancelledError("sleep cancelled", { cause: signal.reason }));
            });
    });
  }

  setTimer(ms: number, callback: () => void): () => void {
    const timer = setTimeout(callback, ms);
    return () => clearTimeout(timer);
  }
}

export const systemClock: Clock = new SystemClock();
