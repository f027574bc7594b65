import { setTimeout as sleep } from "node:timers/promises";

/**
 * Polls `probe` until it returns a value other than undefined, or throws when `timeoutMs`
 * passes, naming `what` and the last error the probe threw.
 */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, options: { timeoutMs?: number; intervalMs?: number } = {}): Promise<T> {
  const deadline = Date.now() + (options.timeoutMs ?? 10_000);
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      const detail = lastError instanceof Error ? `: ${lastError.message}` : "";
      throw new Error(`timed out waiting for ${what}${detail}`);
    }
    await sleep(options.intervalMs ?? 25);
  }
}
