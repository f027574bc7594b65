import assert from "node:assert/strict";
import { createPrivateKey, generateKeyPairSync, randomBytes, X509Certificate } from "node:crypto";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

import { FailedPreconditionError, InvalidArgumentError } from "../../../src/common/errors.js";
import {
  bootstrapClusterCa,
  certificateAuthorityFromPem,
  certificateBackdateMs,
  certificateRenewalTime,
  clusterRootCa,
  createCertificateAuthority,
  loadCertificateAuthority,
  matchJoinToken,
  needsRenewal,
  parseJoinToken,
  rootCaCertFile,
  rootCaKeyFile,
  rootCaValidityMs,
  saveCertificateAuthority,
} from "../../../src/manager/ca/index.js";
import { nodeIdentityOf, verifyNodeCertificate } from "../../../src/rpc/tls/index.js";
import { fixedClock, openssl, opensslMissing } from "./fixtures.js";

const now = Date.UTC(2026, 10, 22, 12, 0, 0);
const dayMs = 24 * 60 * 60 * 1_000;
const clock = fixedClock(now);
const authority = createCertificateAuthority({ clock, randomBytes });

function nodeKey(): ReturnType<typeof generateKeyPairSync> {
  return generateKeyPairSync("ec", { namedCurve: "prime256v1" });
}

function issueWorker(addresses: string[] = ["10.1.2.3", "fd00::7", "worker-1.lab"]): X509Certificate {
  const pem = authority.issueNodeCertificate({
    publicKey: nodeKey().publicKey,
    nodeId: "node7",
    role: "worker",
    clusterId: "cluster9",
    addresses,
    validityMs: 90 * dayMs,
  });
  return new X509Certificate(pem);
}

test("the root CA is a self-signed P-256 CA certificate valid for ten years", () => {
  const certificate = new X509Certificate(authority.certPem);
  assert.equal(certificate.ca, true);
  assert.equal(certificate.subject, "CN=swarm-ca");
  assert.equal(certificate.issuer, "CN=swarm-ca");
  assert.ok(certificate.verify(certificate.publicKey));
  assert.equal(certificate.publicKey.asymmetricKeyDetails?.namedCurve, "prime256v1");
  assert.equal(Date.parse(certificate.validFrom), now - certificateBackdateMs);
  assert.equal(Date.parse(certificate.validTo), now + rootCaValidityMs);
  assert.match(clusterRootCa(authority).certDigest, /^sha256:[0-9a-f]{64}$/);
});

test("a node certificate names cluster, role and node, its addresses, and both TLS usages", () => {
  const certificate = issueWorker();
  assert.equal(certificate.subject, "O=cluster9\nOU=swarm-worker\nCN=node7");
  assert.deepEqual(nodeIdentityOf(certificate), { nodeId: "node7", role: "worker", clusterId: "cluster9" });
  assert.equal(certificate.ca, false);
  assert.ok(certificate.checkIssued(authority.certificate));
  assert.ok(certificate.verify(authority.certificate.publicKey));
  assert.deepEqual(certificate.keyUsage?.sort(), ["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"]);
  assert.equal(certificate.subjectAltName, "DNS:node7, DNS:swarm-worker, DNS:worker-1.lab, IP Address:10.1.2.3, IP Address:FD00:0:0:0:0:0:0:7");
  assert.equal(Date.parse(certificate.validFrom), now - certificateBackdateMs);
  assert.equal(Date.parse(certificate.validTo), now + 90 * dayMs);
  assert.equal(certificate.checkIP("10.1.2.3"), "10.1.2.3");
});

test("certificates verify with openssl and carry the expected extensions", { skip: opensslMissing }, () => {
  const node = issueWorker(["::ffff:10.0.0.1"]).toString();
  // openssl checks validity against the real time; the fixed clock sits close enough to it
  // only by accident, so verify at the certificates' own time.
  const at = String(Math.floor(now / 1_000));
  assert.match(openssl((f) => ["verify", "-attime", at, "-CAfile", f["ca"] ?? "", f["node"] ?? ""], { ca: authority.certPem, node }), /: OK/);
  assert.match(openssl((f) => ["verify", "-attime", at, "-purpose", "sslclient", "-CAfile", f["ca"] ?? "", f["node"] ?? ""], { ca: authority.certPem, node }), /: OK/);
  assert.match(openssl((f) => ["verify", "-attime", at, "-purpose", "sslserver", "-CAfile", f["ca"] ?? "", f["node"] ?? ""], { ca: authority.certPem, node }), /: OK/);
  const text = openssl((f) => ["x509", "-noout", "-text", "-in", f["node"] ?? ""], { node });
  assert.match(text, /Basic Constraints: critical\s+CA:FALSE/);
  assert.match(text, /Key Usage: critical\s+Digital Signature/);
  assert.match(text, /IP Address:0:0:0:0:0:FFFF:A00:1/);
  const caText = openssl((f) => ["x509", "-noout", "-text", "-in", f["ca"] ?? ""], { ca: authority.certPem });
  assert.match(caText, /CA:TRUE/);
  assert.match(caText, /Certificate Sign, CRL Sign/);
});

test("a certificate signed by another CA does not verify with openssl", { skip: opensslMissing }, () => {
  const other = createCertificateAuthority({ clock, randomBytes });
  const node = issueWorker().toString();
  assert.throws(() => openssl((f) => ["verify", "-attime", String(Math.floor(now / 1_000)), "-CAfile", f["ca"] ?? "", f["node"] ?? ""], { ca: other.certPem, node }));
});

test("bad requests are refused with InvalidArgumentError", () => {
  const base = { publicKey: nodeKey().publicKey, nodeId: "n", role: "worker" as const, clusterId: "c", addresses: [], validityMs: 90 * dayMs };
  assert.throws(() => authority.issueNodeCertificate({ ...base, addresses: ["10.0.0.1:2377"] }), InvalidArgumentError);
  assert.throws(() => authority.issueNodeCertificate({ ...base, addresses: ["fe80::1%eth0"] }), InvalidArgumentError);
  assert.throws(() => authority.issueNodeCertificate({ ...base, validityMs: 1_000 }), InvalidArgumentError);
  assert.throws(() => authority.issueNodeCertificate({ ...base, nodeId: "Node_1" }), InvalidArgumentError);
  assert.throws(() => authority.issueNodeCertificate({ ...base, clusterId: "" }), InvalidArgumentError);
  const rsa = generateKeyPairSync("rsa", { modulusLength: 1024 }).publicKey;
  assert.throws(() => authority.issueNodeCertificate({ ...base, publicKey: rsa }), InvalidArgumentError);
});

test("the CA saves with a 0600 key and loads back the same CA", async (t) => {
  const directory = await mkdtemp(join(tmpdir(), "shoal-ca-"));
  t.after(() => rm(directory, { recursive: true, force: true }));
  assert.equal(await loadCertificateAuthority(directory, { clock, randomBytes }), undefined);
  await saveCertificateAuthority(directory, authority);
  assert.equal((await stat(join(directory, rootCaKeyFile))).mode & 0o777, 0o600);
  const loaded = await loadCertificateAuthority(directory, { clock, randomBytes });
  assert.equal(loaded?.certPem, authority.certPem);
  const pem = loaded?.issueNodeCertificate({ publicKey: nodeKey().publicKey, nodeId: "n", role: "manager", clusterId: "c", addresses: [], validityMs: dayMs });
  assert.ok(new X509Certificate(pem ?? "").verify(authority.certificate.publicKey));
  await rm(join(directory, rootCaCertFile));
  await assert.rejects(loadCertificateAuthority(directory, { clock, randomBytes }), FailedPreconditionError);
});

test("a CA key that does not match the certificate is refused", async () => {
  const other = createCertificateAuthority({ clock, randomBytes });
  assert.throws(() => certificateAuthorityFromPem({ certPem: authority.certPem, keyPem: other.keyPem(), clock, randomBytes }), /does not match/);
  const leaf = issueWorker().toString();
  assert.throws(() => certificateAuthorityFromPem({ certPem: leaf, keyPem: authority.keyPem(), clock, randomBytes }), /not a CA/);
  const directory = await mkdtemp(join(tmpdir(), "shoal-ca-"));
  try {
    await writeFile(join(directory, rootCaCertFile), "garbage");
    await writeFile(join(directory, rootCaKeyFile), authority.keyPem());
    await assert.rejects(loadCertificateAuthority(directory, { clock, randomBytes }), InvalidArgumentError);
    assert.equal(await readFile(join(directory, rootCaKeyFile), "utf8"), authority.keyPem());
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
});

test("renewal is due at two thirds of the certificate's life", () => {
  const certificate = issueWorker();
  const from = now - certificateBackdateMs;
  const to = now + 90 * dayMs;
  const due = certificateRenewalTime(certificate);
  assert.equal(due, from + Math.floor(((to - from) * 2) / 3));
  assert.equal(needsRenewal(certificate, due - 1), false);
  assert.equal(needsRenewal(certificate, due), true);
  assert.equal(needsRenewal(certificate, to + 1), true);
});

test("bootstrap makes a saved CA, tokens pinning it, and the first manager's certificate", async (t) => {
  const directory = await mkdtemp(join(tmpdir(), "shoal-ca-"));
  t.after(() => rm(directory, { recursive: true, force: true }));
  const result = await bootstrapClusterCa({
    directory,
    clusterId: "cluster1",
    nodeId: "node1",
    addresses: ["192.0.2.1"],
    nodeCertExpiryMs: 90 * dayMs,
    clock,
    randomBytes,
  });
  assert.equal((await loadCertificateAuthority(directory, { clock, randomBytes }))?.certPem, result.authority.certPem);
  assert.equal(result.rootCa.certPem, result.authority.certPem);
  assert.equal(matchJoinToken(parseJoinToken(result.joinTokens.manager), result.joinTokens, result.authority.certDer), "manager");
  const certificate = new X509Certificate(result.material.certPem);
  const identity = verifyNodeCertificate(certificate, { roots: () => [result.authority.certificate], now: () => now });
  assert.deepEqual(identity, { nodeId: "node1", role: "manager", clusterId: "cluster1" });
  assert.ok(certificate.checkPrivateKey(createPrivateKey(result.material.keyPem)));
});
