import diagnosticsChannel from "node:diagnostics_channel";

import type { Clock } from "../../common/clock.js";
import { errorMessage, ResourceExhaustedError } from "../../common/errors.js";
import type { Logger } from "../../common/logger.js";
import type { MemoryStore, StoreEvent, StoreObjectEvent } from "../store/index.js";

/** First wait before a failed reconcile pass is retried (with a full re-read); doubles per failure. */
export const reconcileRetryDelayMs = 200;
export const reconcileRetryDelayMsMax = 10_000;

/**
 * Published after every reconcile pass: `{ component, scope: "all" | "dirty", objects, version }`
 * where `objects` counts what the pass looked at (services, tasks or slots, by component).
 */
export const reconciledChannel = diagnosticsChannel.channel("shoal:orchestrator:reconciled");

export interface ReconciledMessage {
  component: string;
  scope: "all" | "dirty";
  objects: number;
  version: number;
}

/** What one store-driven component plugs into the shared loop. */
export interface Reconciler {
  /** Marks whatever the event touches as dirty; must not write. */
  observe(event: StoreObjectEvent): void;
  /** Forgets what is dirty and reconciles everything; returns how many objects it looked at. */
  reconcileAll(signal: AbortSignal): Promise<number>;
  /** Reconciles what `observe` marked and clears the marks; returns how many it looked at. */
  reconcileDirty(signal: AbortSignal): Promise<number>;
}

export interface ReconcileLoopOptions {
  component: string;
  store: MemoryStore;
  clock: Clock;
  logger: Logger;
  reconciler: Reconciler;
  /** Object events the component cares about ("commit" and "restored" always pass). */
  filter: (event: StoreObjectEvent) => boolean;
  signal: AbortSignal;
}

function publishReconciled(message: ReconciledMessage): void {
  if (reconciledChannel.hasSubscribers) reconciledChannel.publish(message);
}

async function reconcileLoopPass(options: ReconcileLoopOptions): Promise<void> {
  const { store, reconciler, signal, component } = options;
  const events = store.watch({
    signal,
    filter: (event: StoreEvent) => event.type === "commit" || event.type === "restored" || options.filter(event),
  });
  try {
    // A new leader (or a component restarted after a failure) trusts nothing it saw before.
    const all = await reconciler.reconcileAll(signal);
    publishReconciled({ component, scope: "all", objects: all, version: store.version });
    for await (const event of events) {
      if (event.type === "restored") {
        const restored = await reconciler.reconcileAll(signal);
        publishReconciled({ component, scope: "all", objects: restored, version: event.version });
      } else if (event.type === "commit") {
        const dirty = await reconciler.reconcileDirty(signal);
        if (dirty > 0) publishReconciled({ component, scope: "dirty", objects: dirty, version: event.version });
      } else {
        reconciler.observe(event);
      }
    }
  } finally {
    await events.return?.();
  }
}

/**
 * Runs a component the swarmkit way (manager/orchestrator/replicated.go Run): reconcile
 * everything once, then watch the store, let events mark dirty ids, and reconcile those on
 * each "commit" so one transaction touching many objects costs one pass. Any failure
 * (a lost write race, a watcher that fell behind, a proposal refused while leadership
 * moves) restarts the loop with a full re-read after a growing delay. Returns when
 * `signal` fires.
 */
export async function runReconcileLoop(options: ReconcileLoopOptions): Promise<void> {
  const { signal, clock, logger } = options;
  let delayMs = reconcileRetryDelayMs;
  while (!signal.aborted) {
    try {
      await reconcileLoopPass(options);
      delayMs = reconcileRetryDelayMs;
      if (signal.aborted) return;
      logger.warn("store watch ended while running; watching again");
    } catch (error) {
      if (signal.aborted) return;
      if (error instanceof ResourceExhaustedError) {
        logger.warn({ err: errorMessage(error) }, "fell behind the store; re-reading everything");
        continue;
      }
      logger.warn({ err: errorMessage(error), retryInMs: delayMs }, "reconcile failed; retrying with a full re-read");
    }
    try {
      await clock.sleep(delayMs, { signal });
    } catch {
      // Only the abort signal ends the sleep early, and the loop condition handles it.
    }
    delayMs = Math.min(delayMs * 2, reconcileRetryDelayMsMax);
  }
}
