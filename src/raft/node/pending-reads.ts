import { addAbortListener } from "node:events";

import type { Clock } from "../../common/clock.js";
import { CancelledError, UnavailableError } from "../../common/errors.js";
import type { ReadState } from "../core/types.js";

/** ReadIndex requests waiting on this node; beyond this readIndex() refuses. */
export const pendingReadsMax = 10_000;

interface PendingRead {
  readonly resolve: (index: number) => void;
  readonly reject: (error: Error) => void;
  readonly dispose: () => void;
  /** Set once the leader answered; the read completes when this index is applied. */
  index: number | null;
}

/**
 * Linearizable reads in flight: each has a unique context that the leader echoes in a
 * ReadState; the read completes once the node applied that index. A request whose answer
 * never comes (lost message, leader change) fails at its deadline or at the leader change.
 */
export class PendingReads {
  readonly #clock: Clock;
  readonly #timeoutMs: number;
  readonly #reads = new Map<string, PendingRead>();
  readonly #nonce: number;
  #counter = 0;

  /**
   * `nonce` must be drawn afresh each time the node starts. A ReadState names its read by
   * context alone, and the leader's answer may arrive long after the request was sent: if
   * contexts restarted from the same value, a read from before a restart could resolve one
   * issued after it, with an older index (a stale read). Other members' equal contexts do
   * not collide: the leader keys reads by requester and context (see ReadOnly).
   */
  constructor(options: { clock: Clock; timeoutMs: number; nonce: number }) {
    this.#clock = options.clock;
    this.#timeoutMs = options.timeoutMs;
    this.#nonce = options.nonce;
  }

  add(signal: AbortSignal | undefined): { context: Uint8Array; done: Promise<number> } {
    if (this.#reads.size >= pendingReadsMax) {
      throw new UnavailableError(`${pendingReadsMax} linearizable reads are already waiting: retry later`);
    }
    this.#counter += 1;
    const context = Buffer.alloc(16);
    context.writeBigUInt64BE(BigInt(this.#nonce), 0);
    context.writeBigUInt64BE(BigInt(this.#counter), 8);
    const key = context.toString("hex");
    const done = new Promise<number>((resolve, reject) => {
      const cancelTimer = this.#clock.setTimer(this.#timeoutMs, () => {
        this.#finish(key, new UnavailableError(`no raft leader confirmed the read within ${this.#timeoutMs} ms`));
      });
      const listener =
        signal === undefined
          ? undefined
          : addAbortListener(signal, () => this.#finish(key, new CancelledError("read cancelled", { cause: signal.reason })));
      this.#reads.set(key, {
        resolve,
        reject,
        dispose: () => {
          cancelTimer();
          listener?.[Symbol.dispose]();
        },
        index: null,
      });
    });
    return { context, done };
  }

  #finish(key: string, outcome: Error | number): void {
    const read = this.#reads.get(key);
    if (read === undefined) return;
    this.#reads.delete(key);
    read.dispose();
    if (typeof outcome === "number") read.resolve(outcome);
    else read.reject(outcome);
  }

  /** Forgets a read that raft refused to start; the caller reports that refusal instead. */
  cancel(context: Uint8Array): void {
    const key = Buffer.from(context).toString("hex");
    this.#reads.get(key)?.dispose();
    this.#reads.delete(key);
  }

  onReadState(state: ReadState): void {
    const read = this.#reads.get(Buffer.from(state.requestContext).toString("hex"));
    if (read !== undefined) read.index = state.index;
  }

  onApplied(applied: number): void {
    for (const [key, read] of this.#reads) {
      if (read.index !== null && read.index <= applied) this.#finish(key, read.index);
    }
  }

  /** Requests not yet answered may have died with the old leader: fail them so callers retry. */
  onLeaderChange(): void {
    for (const [key, read] of this.#reads) {
      if (read.index === null) this.#finish(key, new UnavailableError("the raft leader changed before confirming the read: retry"));
    }
  }

  rejectAll(reason: Error): void {
    for (const key of [...this.#reads.keys()]) this.#finish(key, reason);
  }
}
