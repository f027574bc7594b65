// Closed-loop load: `concurrency` workers each send one put at a time until `count` puts
// were sent; latency per put is measured from send to answer.

export interface LoadResult {
  readonly ok: number;
  readonly errors: number;
  readonly opsPerSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

function percentile(sorted: readonly number[], fraction: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(fraction * sorted.length) - 1)] ?? Number.NaN;
}

const round2 = (value: number): number => Math.round(value * 100) / 100;

/** Raw figures of one closed-loop run, to merge with others of the same system (see summarize). */
export interface LoadSample {
  readonly latenciesMs: number[];
  readonly errors: number;
  readonly wallMs: number;
}

/** A closed loop of `count` puts from `concurrency` clients, keys under `prefix`. */
export interface LoadOptions {
  count: number;
  concurrency: number;
  put: (key: string) => Promise<void>;
  prefix: string;
}

export async function measureLoad(options: LoadOptions): Promise<LoadSample> {
  const latenciesMs: number[] = [];
  let next = 0;
  let errors = 0;
  const errorSamples: string[] = [];
  const start = performance.now();
  const worker = async (worker: number): Promise<void> => {
    for (;;) {
      const index = next;
      next += 1;
      if (index >= options.count) return;
      const begin = performance.now();
      try {
        await options.put(`${options.prefix}/${worker}/${index}`);
        latenciesMs.push(performance.now() - begin);
      } catch (error) {
        errors += 1;
        if (errorSamples.length === 0) errorSamples.push(error instanceof Error ? error.message : String(error));
      }
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, (_, i) => worker(i)));
  const wallMs = performance.now() - start;
  const [firstError] = errorSamples;
  if (firstError !== undefined) process.stderr.write(`load ${options.prefix}: ${errors} errors, first: ${firstError}\n`);
  return { latenciesMs, errors, wallMs };
}

/** One result from several runs: puts/s over their summed wall time, percentiles over all puts. */
export function summarize(samples: readonly LoadSample[]): LoadResult {
  const latencies = samples.flatMap((sample) => sample.latenciesMs).sort((a, b) => a - b);
  const wallMs = samples.reduce((sum, sample) => sum + sample.wallMs, 0);
  return {
    ok: latencies.length,
    errors: samples.reduce((sum, sample) => sum + sample.errors, 0),
    opsPerSec: round2((latencies.length / wallMs) * 1000),
    p50Ms: round2(percentile(latencies, 0.5)),
    p99Ms: round2(percentile(latencies, 0.99)),
    maxMs: round2(latencies.at(-1) ?? Number.NaN),
  };
}

export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  return summarize([await measureLoad(options)]);
}

/**
 * kill -9 the leader, then fire one put every `intervalMs` at the survivors in turn (each
 * independent); returns ms from the kill to the first put that succeeds, or null.
 */
export async function measureFailover(options: {
  kill: () => Promise<void> | void;
  survivors: readonly string[];
  put: (endpoint: string, key: string) => Promise<void>;
  intervalMs: number;
  deadlineMs: number;
}): Promise<number | null> {
  const start = performance.now();
  await options.kill();
  return new Promise((resolve) => {
    let attempt = 0;
    let done = false;
    const finish = (value: number | null): void => {
      if (done) return;
      done = true;
      clearInterval(timer);
      resolve(value);
    };
    const timer = setInterval(() => {
      const elapsed = performance.now() - start;
      if (elapsed > options.deadlineMs) {
        finish(null);
        return;
      }
      const endpoint = options.survivors[attempt % options.survivors.length] ?? "";
      attempt += 1;
      options.put(endpoint, `failover/${attempt}`).then(
        () => finish(round2(performance.now() - start)),
        () => undefined,
      );
    }, options.intervalMs);
  });
}
