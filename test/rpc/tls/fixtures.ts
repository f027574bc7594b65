import { generateKeyPairSync, randomBytes } from "node:crypto";

import { systemClock } from "../../../src/common/clock.js";
import { createCertificateAuthority, type CertificateAuthority } from "../../../src/manager/ca/index.js";
import type { NodeCertificateRole, TlsMaterial } from "../../../src/rpc/tls/index.js";

export const testClusterId = "cluster1";

/** TLS material for a node of `role`, signed by `authority` (TLS checks real time, so the system clock). */
export function nodeMaterial(authority: CertificateAuthority, options: { nodeId: string; role: NodeCertificateRole; clusterId?: string }): TlsMaterial {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const certPem = authority.issueNodeCertificate({
    publicKey,
    nodeId: options.nodeId,
    role: options.role,
    clusterId: options.clusterId ?? testClusterId,
    addresses: ["127.0.0.1"],
    validityMs: 24 * 60 * 60 * 1_000,
  });
  return { caPem: authority.certPem, certPem: certPem + authority.certPem, keyPem: privateKey.export({ type: "pkcs8", format: "pem" }).toString() };
}

export function newAuthority(): CertificateAuthority {
  return createCertificateAuthority({ clock: systemClock, randomBytes });
}
