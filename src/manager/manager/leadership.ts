import { CancelledError, errorMessage } from "../../common/errors.js";
import type { Clock } from "../../common/clock.js";
import type { Logger } from "../../common/logger.js";
import type { LeaderChange, RaftNode } from "../../raft/index.js";

/** Pause between attempts to confirm a new leadership (a ReadIndex round) before starting components. */
export const leadershipConfirmRetryMs = 100;

/** One leader-only component: runs until the term's signal fires. */
export type TermComponent = (signal: AbortSignal) => Promise<void>;

interface Term {
  readonly term: number;
  readonly abort: AbortController;
  readonly done: Promise<void>;
}

/**
 * Runs the leader-only components while this manager leads, with one AbortController per
 * leadership term. A new term first waits for a ReadIndex round to complete: raft answers
 * it only once the leader's own first entry is committed and applied here, so the store
 * holds every earlier entry before any component reads it or proposes (the Proposer's
 * precondition). Terms never overlap: a new one starts after the previous one stopped.
 */
export class LeadershipRunner {
  readonly #raftNode: RaftNode;
  readonly #components: readonly TermComponent[];
  readonly #onTermStart: (term: number) => void;
  readonly #onTermEnd: () => Promise<void>;
  readonly #clock: Clock;
  readonly #logger: Logger;
  #current: Term | null = null;
  #chain: Promise<void> = Promise.resolve();
  #ready = false;
  readonly #readyWaiters = new Set<() => void>();
  #closed = false;
  #unsubscribe: (() => void) | null = null;

  constructor(options: {
    raftNode: RaftNode;
    components: readonly TermComponent[];
    /** Called with the term once it is confirmed, before the components start (the dispatcher's start). */
    onTermStart: (term: number) => void;
    /** Called after the components stopped (the dispatcher's stop). */
    onTermEnd: () => Promise<void>;
    clock: Clock;
    logger: Logger;
  }) {
    this.#raftNode = options.raftNode;
    this.#components = options.components;
    this.#onTermStart = options.onTermStart;
    this.#onTermEnd = options.onTermEnd;
    this.#clock = options.clock;
    this.#logger = options.logger.child({ component: "leadership" });
  }

  /** Starts following leadership changes (and acts on the current role at once). */
  start(): void {
    this.#unsubscribe = this.#raftNode.onLeaderChange((change) => this.#onChange(change));
    const status = this.#raftNode.status();
    this.#onChange({ nodeId: status.id, leader: status.leader, term: status.term, role: status.role });
  }

  /** Whether the leader-only components run now (this manager leads and has confirmed it). */
  get leading(): boolean {
    return this.#ready;
  }

  /** Resolves once this manager leads with its components running; CancelledError when `signal` fires first. */
  waitUntilLeading(signal: AbortSignal): Promise<void> {
    if (this.#ready) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const waiter = (): void => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      };
      const onAbort = (): void => {
        this.#readyWaiters.delete(waiter);
        reject(new CancelledError("stopped waiting for this manager to lead", { cause: signal.reason }));
      };
      if (signal.aborted) {
        onAbort();
        return;
      }
      signal.addEventListener("abort", onAbort, { once: true });
      this.#readyWaiters.add(waiter);
    });
  }

  #onChange(change: LeaderChange): void {
    if (this.#closed) return;
    const leads = change.role === "leader";
    const current = this.#current;
    if (current !== null && (!leads || current.term !== change.term)) this.#stopTerm();
    if (leads && this.#current === null) this.#startTerm(change.term);
  }

  #startTerm(term: number): void {
    const abort = new AbortController();
    const previous = this.#chain;
    const done = previous.then(() => this.#runTerm(term, abort.signal));
    this.#current = { term, abort, done };
    this.#chain = done;
  }

  #stopTerm(): void {
    const current = this.#current;
    if (current === null) return;
    this.#current = null;
    this.#ready = false;
    current.abort.abort(new CancelledError(`leadership of term ${current.term} ended`));
  }

  async #confirm(signal: AbortSignal): Promise<boolean> {
    while (!signal.aborted) {
      try {
        await this.#raftNode.readIndex({ signal });
        return !signal.aborted;
      } catch (error) {
        if (signal.aborted) return false;
        this.#logger.debug({ err: errorMessage(error) }, "leadership not confirmed yet");
        await this.#clock.sleep(leadershipConfirmRetryMs, { signal }).catch(() => undefined);
      }
    }
    return false;
  }

  async #runTerm(term: number, signal: AbortSignal): Promise<void> {
    if (signal.aborted || !(await this.#confirm(signal))) return;
    this.#logger.info({ term }, "leading: starting the orchestrators, scheduler, dispatcher and member reconciler");
    this.#onTermStart(term);
    this.#ready = true;
    for (const waiter of [...this.#readyWaiters]) {
      this.#readyWaiters.delete(waiter);
      waiter();
    }
    const results = await Promise.allSettled(this.#components.map((component) => component(signal)));
    for (const result of results) {
      if (result.status === "rejected" && !signal.aborted) {
        this.#logger.error({ err: errorMessage(result.reason), term }, "a leader component stopped with an error");
      }
    }
    try {
      await this.#onTermEnd();
    } catch (error) {
      this.#logger.error({ err: errorMessage(error), term }, "stopping the leader components failed");
    }
    this.#logger.info({ term }, "leader components stopped");
  }

  /** Stops the current term's components and waits for them. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#unsubscribe?.();
    this.#unsubscribe = null;
    this.#stopTerm();
    await this.#chain;
  }
}
