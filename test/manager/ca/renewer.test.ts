import assert from "node:assert/strict";
import { randomBytes, X509Certificate } from "node:crypto";
import { test } from "node:test";

import { pino } from "pino";

import { UnavailableError } from "../../../src/common/errors.js";
import {
  CertificateRenewer,
  certificateRenewalTime,
  createCertificateAuthority,
  issueLocalNodeMaterial,
  renewalRetryDelayMsMin,
} from "../../../src/manager/ca/index.js";
import { TlsMaterialSource, type TlsMaterial } from "../../../src/rpc/tls/index.js";
import { FakeClock } from "../../helpers/fake-clock.js";
import { waitFor } from "../../helpers/wait.js";

const logger = pino({ level: "silent" });
const dayMs = 24 * 60 * 60 * 1_000;

test("the renewer renews at two thirds of the life, backs off on failure, and stops on abort", async (t) => {
  const clock = new FakeClock(Date.UTC(2026, 10, 22));
  const authority = createCertificateAuthority({ clock, randomBytes });
  const request = { nodeId: "node1", role: "worker" as const, clusterId: "cluster1", addresses: [], validityMs: 90 * dayMs };
  const source = new TlsMaterialSource(issueLocalNodeMaterial(authority, request));
  const saved: TlsMaterial[] = [];
  let failuresLeft = 0;
  const renewer = new CertificateRenewer({
    source,
    clock,
    logger,
    renew: () => {
      if (failuresLeft > 0) {
        failuresLeft -= 1;
        return Promise.reject(new UnavailableError("no manager reachable"));
      }
      return Promise.resolve(issueLocalNodeMaterial(authority, request));
    },
    save: (material) => {
      saved.push(material);
      return Promise.resolve();
    },
  });
  const controller = new AbortController();
  const running = renewer.run(controller.signal);
  t.after(async () => {
    controller.abort();
    await running;
  });
  const first = new X509Certificate(source.material.certPem);
  const due = certificateRenewalTime(first);
  await waitFor("the renewer to wait for the due time", () => (clock.nextDueAt() === due ? true : undefined));
  clock.advance(due - 1 - clock.now());
  assert.equal(renewer.renewals, 0);
  clock.advance(1);
  await waitFor("the first renewal", () => (renewer.renewals === 1 ? true : undefined));
  assert.equal(saved.length, 1);
  assert.equal(source.material.certPem, saved[0]?.certPem);
  const second = new X509Certificate(source.material.certPem);
  assert.notEqual(second.serialNumber, first.serialNumber);
  await waitFor("the next renewal to be scheduled", () => (clock.nextDueAt() === certificateRenewalTime(second) ? true : undefined));

  failuresLeft = 2;
  const failedAt = clock.now();
  renewer.renewSoon();
  await waitFor("a retry after the first failure", () => (clock.nextDueAt() === failedAt + renewalRetryDelayMsMin ? true : undefined));
  clock.advance(renewalRetryDelayMsMin);
  const retriedAt = clock.now();
  await waitFor("a doubled delay after the second failure", () => (clock.nextDueAt() === retriedAt + 2 * renewalRetryDelayMsMin ? true : undefined));
  clock.advance(2 * renewalRetryDelayMsMin);
  await waitFor("the renewal after the failures", () => (renewer.renewals === 2 ? true : undefined));

  controller.abort();
  await running;
  assert.equal(clock.pendingTimers, 0);
});

test("a renewal that names another node is refused and not used", async (t) => {
  const clock = new FakeClock(Date.UTC(2026, 10, 22));
  const authority = createCertificateAuthority({ clock, randomBytes });
  const request = { nodeId: "node1", role: "worker" as const, clusterId: "cluster1", addresses: [], validityMs: 90 * dayMs };
  const original = issueLocalNodeMaterial(authority, request);
  const source = new TlsMaterialSource(original);
  let attempts = 0;
  const renewer = new CertificateRenewer({
    source,
    clock,
    logger,
    renew: () => {
      attempts += 1;
      return Promise.resolve(issueLocalNodeMaterial(authority, { ...request, nodeId: "node2" }));
    },
    save: () => Promise.reject(new Error("must not save a certificate for another node")),
  });
  const controller = new AbortController();
  const running = renewer.run(controller.signal);
  t.after(async () => {
    controller.abort();
    await running;
  });
  renewer.renewSoon();
  await waitFor("the refused attempt", () => (attempts === 1 && clock.pendingTimers === 1 ? true : undefined));
  assert.equal(renewer.renewals, 0);
  assert.equal(source.material.certPem, original.certPem);
});
