import { addAbortListener } from "node:events";

import type { Clock } from "../../common/clock.js";
import { CancelledError } from "../../common/errors.js";

/** Node's timers hold at most 2^31 - 1 ms (about 24.8 days); a longer delay fires after 1 ms. */
export const timerDelayMsMax = 2 ** 31 - 1;

/**
 * `clock` with timers of any length: a delay beyond timerDelayMsMax is waited in steps.
 * Certificate renewal waits two thirds of a 90-day certificate, which Node's setTimeout
 * would otherwise cut to 1 ms, renewing in a tight loop.
 */
export function longTimerClock(clock: Clock): Clock {
  const setTimer = (ms: number, callback: () => void): (() => void) => {
    let cancel: () => void = () => undefined;
    const arm = (remainingMs: number): void => {
      const stepMs = Math.min(Math.max(0, remainingMs), timerDelayMsMax);
      cancel = clock.setTimer(stepMs, () => {
        if (remainingMs > timerDelayMsMax) arm(remainingMs - stepMs);
        else callback();
      });
    };
    arm(ms);
    return () => cancel();
  };
  return {
    now: () => clock.now(),
    setTimer,
    sleep(ms, options = {}) {
      const { signal } = options;
      if (signal?.aborted === true) return Promise.reject(new CancelledError("sleep cancelled", { cause: signal.reason }));
      return new Promise((resolve, reject) => {
        const cancel = setTimer(ms, () => {
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
    },
  };
}
