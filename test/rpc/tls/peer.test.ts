import assert from "node:assert/strict";
import { createPrivateKey, generateKeyPairSync, randomBytes, X509Certificate } from "node:crypto";
import { test } from "node:test";

import { InvalidArgumentError, UnauthenticatedError } from "../../../src/common/errors.js";
import { certificateBackdateMs, createCertificateAuthority, issueLocalNodeMaterial } from "../../../src/manager/ca/index.js";
import { buildCertificate } from "../../../src/manager/ca/x509.js";
import { nodeTrustFromPem, peerIdentity, verifyNodeCertificate, type NodeTrust } from "../../../src/rpc/tls/index.js";

const now = Date.UTC(2026, 10, 22);
const dayMs = 24 * 60 * 60 * 1_000;
const clock = { now: () => now, sleep: () => Promise.resolve(), setTimer: () => () => undefined };
const authority = createCertificateAuthority({ clock, randomBytes });
const material = issueLocalNodeMaterial(authority, { nodeId: "node1", role: "worker", clusterId: "cluster1", addresses: [], validityMs: dayMs });
const leaf = new X509Certificate(material.certPem);

function trustAt(atMs: number): NodeTrust {
  return nodeTrustFromPem({ caPem: authority.certPem, clock: { now: () => atMs } });
}

function refusal(certificate: X509Certificate, trust: NodeTrust): string {
  try {
    verifyNodeCertificate(certificate, trust);
  } catch (error) {
    assert.ok(error instanceof UnauthenticatedError);
    return error.message;
  }
  return "accepted";
}

test("a node certificate verifies only within its validity period", () => {
  assert.deepEqual(verifyNodeCertificate(leaf, trustAt(now)), { nodeId: "node1", role: "worker", clusterId: "cluster1" });
  assert.match(refusal(leaf, trustAt(now + dayMs + 1_000)), /not now/);
  assert.match(refusal(leaf, trustAt(now - certificateBackdateMs - 1_000)), /not now/);
});

test("CA certificates and certificates that name no node are refused", () => {
  assert.match(refusal(authority.certificate, trustAt(now)), /CA certificate/);
  // The CA only makes node subjects, so build one without O and OU by hand.
  const { publicKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const caKey = createPrivateKey(authority.keyPem());
  const strange = new X509Certificate(
    buildCertificate({
      serialNumber: Buffer.from([1]),
      issuer: { commonName: "swarm-ca" },
      subject: { commonName: "node1" },
      notBeforeMs: now - 1_000,
      notAfterMs: now + dayMs,
      subjectPublicKey: publicKey,
      issuerPublicKey: authority.certificate.publicKey,
      signingKey: caKey,
      kind: { type: "leaf", dnsNames: [], ipAddresses: [] },
    }),
  );
  assert.ok(strange.verify(authority.certificate.publicKey));
  assert.match(refusal(strange, trustAt(now)), /does not name a node/);
});

test("peerIdentity is null without a certificate and for one that does not verify", () => {
  const trust = trustAt(now);
  assert.equal(peerIdentity({ getAuthContext: () => null }, trust), null);
  assert.equal(peerIdentity({ getAuthContext: () => ({}) }, trust), null);
  const other = createCertificateAuthority({ clock, randomBytes });
  const foreign = issueLocalNodeMaterial(other, { nodeId: "node2", role: "manager", clusterId: "cluster1", addresses: [], validityMs: dayMs });
  const call = (pem: string): { getAuthContext(): { sslPeerCertificate: never } } => ({
    getAuthContext: () => ({ sslPeerCertificate: { raw: new X509Certificate(pem).raw } as never }),
  });
  assert.equal(peerIdentity(call(foreign.certPem), trust), null);
  assert.equal(peerIdentity(call(material.certPem), trust)?.nodeId, "node1");
});

test("a trust bundle holding a node certificate is refused", () => {
  assert.throws(() => nodeTrustFromPem({ caPem: material.certPem, clock }), InvalidArgumentError);
});
