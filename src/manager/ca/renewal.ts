import type { X509Certificate } from "node:crypto";

/** Swarm renews between 50% and 80% of a certificate's life; shoal at two thirds. */
export const renewalLifeFraction = 2 / 3;

/** When `certificate` should be renewed: two thirds of the way from notBefore to notAfter (ms since the epoch). */
export function certificateRenewalTime(certificate: X509Certificate): number {
  const fromMs = Date.parse(certificate.validFrom);
  const toMs = Date.parse(certificate.validTo);
  return fromMs + Math.floor((toMs - fromMs) * renewalLifeFraction);
}

/** Whether `certificate` is due for renewal at `nowMs` (true as well once it has expired). */
export function needsRenewal(certificate: X509Certificate, nowMs: number): boolean {
  return nowMs >= certificateRenewalTime(certificate);
}
