import type { ExitStatus } from "./types.js";

/**
 * One run of a container, from `start` until its exit is recorded. `ready` settles when
 * start finished (so an exit seen early waits for start's bookkeeping), `exited` when the
 * exit has been reaped and persisted.
 */
export class RunSession {
  readonly ready: Promise<boolean>;
  readonly exited: Promise<ExitStatus>;
  reaping = false;
  #resolveReady: (started: boolean) => void = () => {};
  #resolveExited: (status: ExitStatus) => void = () => {};

  constructor() {
    this.ready = new Promise((resolve) => {
      this.#resolveReady = resolve;
    });
    this.exited = new Promise((resolve) => {
      this.#resolveExited = resolve;
    });
  }

  /** Start finished; `started` is false when it failed and cleaned up itself. */
  markReady(started: boolean): void {
    this.#resolveReady(started);
  }

  markExited(status: ExitStatus): void {
    this.#resolveExited(status);
  }
}

/** Serialises operations on one container (start, restart, remove); others may run freely. */
export class OperationLock {
  #tail: Promise<void> = Promise.resolve();

  run<T>(operation: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(operation);
    this.#tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }
}
