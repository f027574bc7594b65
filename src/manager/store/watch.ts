import { addAbortListener } from "node:events";

import { InternalError, ResourceExhaustedError } from "../../common/errors.js";
import type { StoreEvent } from "./types.js";

/**
 * Events queued for one watcher before it is judged too slow and closed with an error; a
 * closed watcher restarts its watch and re-reads the store (what swarmkit's watch queue
 * does), so memory stays bounded however slow a consumer is.
 */
export const watchQueueEventsMax = 100_000;
/** Consumed events kept at the head of the queue array before it is compacted. */
const queueCompactThreshold = 4_096;

/** One watcher's bounded queue and the async iterator that drains it. */
export class Watcher implements AsyncIterableIterator<StoreEvent, undefined> {
  readonly #filter: (event: StoreEvent) => boolean;
  readonly #queueEventsMax: number;
  readonly #onClose: (watcher: Watcher) => void;
  #queue: (StoreEvent | undefined)[] = [];
  #head = 0;
  #waiting: { resolve: (result: IteratorResult<StoreEvent, undefined>) => void; reject: (error: Error) => void } | undefined;
  #closed = false;
  #error: Error | undefined = undefined;
  #abortListener: Disposable | undefined;

  constructor(options: { filter: (event: StoreEvent) => boolean; queueEventsMax: number; signal: AbortSignal | undefined; onClose: (watcher: Watcher) => void }) {
    this.#filter = options.filter;
    this.#queueEventsMax = options.queueEventsMax;
    this.#onClose = options.onClose;
    if (options.signal !== undefined) {
      if (options.signal.aborted) this.close(undefined);
      else this.#abortListener = addAbortListener(options.signal, () => this.close(undefined));
    }
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Queues `event` if it passes the filter; closes the watcher with an error on overflow. */
  push(event: StoreEvent): void {
    if (this.#closed || !this.#passes(event)) return;
    const waiting = this.#waiting;
    if (waiting !== undefined) {
      this.#waiting = undefined;
      waiting.resolve({ value: event, done: false });
      return;
    }
    if (this.#queue.length - this.#head >= this.#queueEventsMax) {
      this.close(
        new ResourceExhaustedError(
          `store watcher fell more than ${this.#queueEventsMax} events behind and was closed; watch again and re-read the store`,
        ),
      );
      return;
    }
    this.#queue.push(event);
  }

  /** Ends the iteration: cleanly when `error` is undefined, else by throwing it after queued events are read. */
  close(error: Error | undefined): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#error = error;
    this.#abortListener?.[Symbol.dispose]();
    this.#abortListener = undefined;
    this.#onClose(this);
    const waiting = this.#waiting;
    this.#waiting = undefined;
    if (waiting === undefined) return;
    if (error === undefined) waiting.resolve({ value: undefined, done: true });
    else waiting.reject(error);
  }

  /** A throwing filter ends its own watch with that error instead of breaking the store's apply. */
  #passes(event: StoreEvent): boolean {
    try {
      return this.#filter(event);
    } catch (error) {
      this.close(error instanceof Error ? error : new InternalError(`store watch filter threw ${typeof error}`));
      return false;
    }
  }

  next(): Promise<IteratorResult<StoreEvent, undefined>> {
    if (this.#head < this.#queue.length) {
      const event = this.#queue[this.#head];
      this.#queue[this.#head] = undefined;
      this.#head += 1;
      this.#compact();
      if (event !== undefined) return Promise.resolve({ value: event, done: false });
    }
    if (this.#closed) {
      if (this.#error !== undefined) {
        const error = this.#error;
        this.#error = undefined;
        return Promise.reject(error);
      }
      return Promise.resolve({ value: undefined, done: true });
    }
    return new Promise((resolve, reject) => {
      this.#waiting = { resolve, reject };
    });
  }

  return(): Promise<IteratorResult<StoreEvent, undefined>> {
    this.close(undefined);
    this.#queue = [];
    this.#head = 0;
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<StoreEvent, undefined> {
    return this;
  }

  #compact(): void {
    if (this.#head === this.#queue.length) {
      this.#queue = [];
      this.#head = 0;
    } else if (this.#head >= queueCompactThreshold && this.#head * 2 >= this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
  }
}
