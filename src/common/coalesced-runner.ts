/**
 * Runs `work` one call at a time, and folds every call made while a run already waits into
 * that run: for work that reads the newest state when it starts (apply the desired state),
 * one run after the last change does what one run per change would, without a backlog
 * that grows while changes come faster than runs end.
 */
export class CoalescedRunner {
  readonly #work: () => Promise<void>;
  #tail: Promise<void> = Promise.resolve();
  #waiting: Promise<void> | undefined;

  constructor(work: () => Promise<void>) {
    this.#work = work;
  }

  /**
   * Queues a run unless one already waits to start; settles as the run that covers this
   * call does (a failed run rejects its callers; the next run still happens).
   */
  run(): Promise<void> {
    if (this.#waiting !== undefined) return this.#waiting;
    const start = (): Promise<void> => {
      this.#waiting = undefined;
      return this.#work();
    };
    const next = this.#tail.then(start, start);
    this.#waiting = next;
    this.#tail = next;
    return next;
  }

  /** Settles once the last queued run has (never rejects: each run's callers saw its error). */
  idle(): Promise<void> {
    return this.#tail.catch(() => undefined);
  }
}
