import { addAbortListener } from "node:events";

import type { Clock } from "../../common/clock.js";
import { UnavailableError, errorMessage } from "../../common/errors.js";
import type { Logger } from "../../common/logger.js";
import { nodeIdentityOf, type TlsMaterial, type TlsMaterialSource } from "../../rpc/tls/index.js";
import { leafCertificate, renewNodeCertificate } from "./node-ca-client.js";
import { certificateRenewalTime } from "./renewal.js";

/** Backoff between failed renewal attempts, doubling from the minimum up to the maximum. */
export const renewalRetryDelayMsMin = 1_000;
export const renewalRetryDelayMsMax = 5 * 60 * 1_000;

/** Gets a renewed certificate for the node holding `current`. */
export type RenewFunction = (current: TlsMaterial, options: { signal: AbortSignal }) => Promise<TlsMaterial>;

export interface CertificateRenewerOptions {
  /** The material servers and clients of this node use; updated after every renewal. */
  source: TlsMaterialSource;
  renew: RenewFunction;
  /** Makes the new material durable before it is used (saveTlsMaterial in production). */
  save: (material: TlsMaterial, options: { signal: AbortSignal }) => Promise<void>;
  clock: Clock;
  logger: Logger;
}

/**
 * A RenewFunction asking the managers at `managers()` in turn (NodeCA IssueNodeCertificate
 * with the current certificate as proof), for a certificate naming `addresses()`.
 * Rejects with the last manager's error when none renews.
 */
export function renewFromManagers(options: { managers: () => readonly string[]; addresses: () => readonly string[] }): RenewFunction {
  return async (current, { signal }) => {
    let lastError: unknown = new UnavailableError("no manager address is known: the node cannot renew its certificate");
    for (const address of options.managers()) {
      try {
        return await renewNodeCertificate({ address, current, addresses: options.addresses(), signal });
      } catch (error) {
        if (signal.aborted) throw error;
        lastError = error;
      }
    }
    throw lastError;
  };
}

/**
 * Keeps a node's certificate fresh: renews it at two thirds of its life (see
 * certificateRenewalTime), or at once when renewSoon() is called (after a promotion or
 * demotion), retrying failures with backoff. The new certificate must keep the node id.
 */
export class CertificateRenewer {
  readonly #options: CertificateRenewerOptions;
  readonly #logger: Logger;
  #wanted = false;
  #wake: (() => void) | undefined;
  #renewals = 0;

  constructor(options: CertificateRenewerOptions) {
    this.#options = options;
    this.#logger = options.logger.child({ component: "certificate-renewer" });
  }

  /** Certificates renewed since the renewer was made. */
  get renewals(): number {
    return this.#renewals;
  }

  /** Asks for a renewal now rather than at the scheduled time. */
  renewSoon(): void {
    this.#wanted = true;
    this.#wake?.();
  }

  /** Runs until `signal` fires; resolves then. Never rejects: failures are logged and retried. */
  async run(signal: AbortSignal): Promise<void> {
    let retryDelayMs = renewalRetryDelayMsMin;
    // After a failure the renewal is still owed, whatever made it due.
    let retrying = false;
    while (!signal.aborted) {
      const dueInMs = certificateRenewalTime(leafCertificate(this.#options.source.material)) - this.#options.clock.now();
      if (dueInMs > 0 && !this.#wanted && !retrying) await this.#pause(dueInMs, signal, true);
      if (signal.aborted) break;
      this.#wanted = false;
      try {
        await this.#renewOnce(signal);
        retryDelayMs = renewalRetryDelayMsMin;
        retrying = false;
      } catch (error) {
        if (signal.aborted) break;
        retrying = true;
        this.#logger.warn({ err: error, retryInMs: retryDelayMs }, `certificate renewal failed: ${errorMessage(error)}`);
        await this.#pause(retryDelayMs, signal, false);
        retryDelayMs = Math.min(retryDelayMs * 2, renewalRetryDelayMsMax);
      }
    }
  }

  async #renewOnce(signal: AbortSignal): Promise<void> {
    const current = this.#options.source.material;
    const before = leafCertificate(current);
    const renewed = await this.#options.renew(current, { signal });
    const after = leafCertificate(renewed);
    const beforeNode = nodeIdentityOf(before)?.nodeId;
    if (beforeNode === undefined || nodeIdentityOf(after)?.nodeId !== beforeNode) {
      throw new UnavailableError(`the renewed certificate names "${after.subject}", not this node ("${before.subject}")`);
    }
    await this.#options.save(renewed, { signal });
    this.#options.source.update(renewed);
    this.#renewals += 1;
    this.#logger.info({ subject: after.subject, validTo: after.validTo }, "node certificate renewed");
  }

  /** Waits `ms` on the clock; returns early when `signal` fires or (if `wakeable`) renewSoon is called. */
  #pause(ms: number, signal: AbortSignal, wakeable: boolean): Promise<void> {
    return new Promise((resolve) => {
      const cleanups: Array<() => void> = [];
      let settled = false;
      const done = (): void => {
        if (settled) return;
        settled = true;
        for (const cleanup of cleanups) cleanup();
        if (this.#wake === done) this.#wake = undefined;
        resolve();
      };
      cleanups.push(this.#options.clock.setTimer(ms, done));
      const listener = addAbortListener(signal, done);
      cleanups.push(() => listener[Symbol.dispose]());
      if (wakeable) this.#wake = done;
      if (signal.aborted) done();
    });
  }
}
