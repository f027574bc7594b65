import type { Clock } from "../common/clock.js";
import { CancelledError, errorMessage } from "../common/errors.js";
import { serviceDefaults, type HealthConfig, type TaskHealth } from "../manager/objects/index.js";

/** Output of one check kept for the task's status message; the rest is cut. */
export const healthOutputCharsMax = 200;

/** A health check as the image config writes it (durations in nanoseconds; 0 = default). */
export interface ImageHealthcheck {
  readonly test: readonly string[];
  readonly intervalNs: number;
  readonly timeoutNs: number;
  readonly startPeriodNs: number;
  /** Absent from images built before Docker 25. */
  readonly startIntervalNs?: number;
  readonly retries: number;
}

/** A health check ready to run: the command and its timing, all filled in. */
export interface ResolvedHealthcheck {
  command: string[];
  intervalMs: number;
  timeoutMs: number;
  retries: number;
  startPeriodMs: number;
  startIntervalMs: number;
}

/** Runs the check's command once inside the task's container. */
export type HealthProbe = (command: readonly string[], options: { signal: AbortSignal }) => Promise<{ exitCode: number; output: string }>;

function commandOf(test: readonly string[]): string[] | undefined {
  const [kind, ...rest] = test;
  switch (kind) {
    case "CMD":
      return rest.length === 0 ? undefined : rest;
    case "CMD-SHELL":
      return rest.length === 0 ? undefined : ["/bin/sh", "-c", rest.join(" ")];
    default:
      return undefined;
  }
}

function nsToMs(ns: number, fallback: number): number {
  return ns > 0 ? Math.max(1, Math.round(ns / 1e6)) : fallback;
}

/**
 * The check a task runs, as Docker picks it: the service spec's when it has a test
 * (["NONE"] turns the image's off), else the image's, with the spec's timings when it sets
 * a healthcheck without a test; swarm's defaults (30 s, 30 s, 3 retries) fill the rest.
 * Undefined when there is no check.
 */
export function resolveHealthcheck(spec: HealthConfig | undefined, image: ImageHealthcheck | undefined): ResolvedHealthcheck | undefined {
  const defaults = serviceDefaults.healthcheck;
  if (spec !== undefined && spec.test[0] === "NONE") return undefined;
  const test = spec !== undefined && spec.test.length > 0 ? spec.test : image?.test;
  if (test === undefined || test[0] === "NONE") return undefined;
  const command = commandOf(test);
  if (command === undefined) return undefined;
  const pick = (fromSpec: number | undefined, fromImageNs: number | undefined, fallback: number): number =>
    fromSpec !== undefined && fromSpec > 0 ? fromSpec : nsToMs(fromImageNs ?? 0, fallback);
  return {
    command,
    intervalMs: pick(spec?.intervalMs, image?.intervalNs, defaults.intervalMs),
    timeoutMs: pick(spec?.timeoutMs, image?.timeoutNs, defaults.timeoutMs),
    retries: spec !== undefined && spec.retries > 0 ? spec.retries : image !== undefined && image.retries > 0 ? image.retries : defaults.retries,
    startPeriodMs: pick(spec?.startPeriodMs, image?.startPeriodNs, defaults.startPeriodMs),
    startIntervalMs: pick(spec?.startIntervalMs, image?.startIntervalNs, defaults.startIntervalMs),
  };
}

export interface HealthMonitorOptions {
  check: ResolvedHealthcheck;
  probe: HealthProbe;
  clock: Clock;
  /** Called on every change of verdict, with the last check's output. Never called after stop(). */
  onChange: (health: TaskHealth, output: string) => void;
}

/**
 * Runs a container's health check the way Docker does: every interval (every start
 * interval during the start period, until a check passes), each run cut off after the
 * timeout; a pass makes it healthy; `retries` failures in a row make it unhealthy, except
 * that failures in the start period do not count while it has never passed. Unhealthy is
 * final: the task is failed and its restart policy decides.
 */
export class HealthMonitor {
  readonly #options: HealthMonitorOptions;
  readonly #stopped = new AbortController();
  #health: TaskHealth = "starting";
  #done: Promise<void> | undefined;

  constructor(options: HealthMonitorOptions) {
    this.#options = options;
  }

  get health(): TaskHealth {
    return this.#health;
  }

  start(): void {
    this.#done ??= this.#run().catch((error: unknown) => {
      if (!(error instanceof CancelledError)) throw error;
    });
  }

  /** Stops checking and waits for a check in progress to end. */
  async stop(): Promise<void> {
    this.#stopped.abort();
    await this.#done;
  }

  async #run(): Promise<void> {
    const { check, clock } = this.#options;
    const signal = this.#stopped.signal;
    const startedAt = clock.now();
    let failures = 0;
    while (!signal.aborted) {
      await clock.sleep(this.#delayMs(startedAt), { signal });
      const result = await this.#probeOnce();
      if (signal.aborted) return;
      if (result.exitCode === 0) {
        failures = 0;
        this.#set("healthy", result.output);
        continue;
      }
      if (this.#health === "starting" && clock.now() - startedAt < check.startPeriodMs) continue;
      failures += 1;
      if (failures >= check.retries) {
        this.#set("unhealthy", result.output);
        return;
      }
    }
  }

  /**
   * The wait before the next check. Within the start period, while starting, the start
   * interval, but never past the period's end: Docker 25 waited a whole start interval
   * even when the period ended sooner (moby#46747), which delays an unhealthy verdict.
   */
  #delayMs(startedAt: number): number {
    const { check, clock } = this.#options;
    const periodLeftMs = startedAt + check.startPeriodMs - clock.now();
    if (this.#health !== "starting" || periodLeftMs <= 0) return check.intervalMs;
    return Math.min(check.startIntervalMs, periodLeftMs);
  }

  async #probeOnce(): Promise<{ exitCode: number; output: string }> {
    const { check, probe, clock } = this.#options;
    const attempt = new AbortController();
    const onStop = (): void => attempt.abort();
    this.#stopped.signal.addEventListener("abort", onStop, { once: true });
    const cancelTimeout = clock.setTimer(check.timeoutMs, () => attempt.abort());
    try {
      const result = await probe(check.command, { signal: attempt.signal });
      return { exitCode: result.exitCode, output: result.output.slice(0, healthOutputCharsMax) };
    } catch (error) {
      if (this.#stopped.signal.aborted) throw new CancelledError("health check stopped", { cause: error });
      const timedOut = attempt.signal.aborted;
      return { exitCode: -1, output: timedOut ? `health check timed out after ${check.timeoutMs} ms` : `health check could not run: ${errorMessage(error)}` };
    } finally {
      cancelTimeout();
      this.#stopped.signal.removeEventListener("abort", onStop);
    }
  }

  #set(health: TaskHealth, output: string): void {
    if (health === this.#health || this.#stopped.signal.aborted) return;
    this.#health = health;
    this.#options.onChange(health, output.trim());
  }
}
