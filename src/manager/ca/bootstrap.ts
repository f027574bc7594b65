import { generateKeyPairSync } from "node:crypto";

import type { Clock } from "../../common/clock.js";
import type { NodeCertificateRole, TlsMaterial } from "../../rpc/tls/index.js";
import type { JoinTokens, RootCa } from "../objects/index.js";
import { clusterRootCa, createCertificateAuthority, type CertificateAuthority } from "./authority.js";
import { generateJoinTokens } from "./join-token.js";
import { saveCertificateAuthority } from "./storage.js";

/**
 * TLS material for a node of the CA-holding manager itself (its own certificate, made
 * without a network round trip): a fresh P-256 key certified by `authority`.
 */
export function issueLocalNodeMaterial(
  authority: CertificateAuthority,
  request: { nodeId: string; role: NodeCertificateRole; clusterId: string; addresses: readonly string[]; validityMs: number },
): TlsMaterial {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const certPem = authority.issueNodeCertificate({ ...request, publicKey });
  return {
    caPem: authority.certPem,
    certPem: certPem + authority.certPem,
    keyPem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
  };
}

export interface ClusterCaBootstrap {
  authority: CertificateAuthority;
  /** For the Cluster object's rootCa. */
  rootCa: RootCa;
  /** For the Cluster object's joinTokens. */
  joinTokens: JoinTokens;
  /** The first manager's own TLS material (save it with saveTlsMaterial). */
  material: TlsMaterial;
}

/**
 * What `swarm init` needs from the CA: a new root CA saved in `directory` (key 0600), join
 * tokens for both roles, and a manager certificate for the initializing node. The caller
 * writes rootCa and joinTokens into the Cluster object it creates.
 */
export async function bootstrapClusterCa(options: {
  directory: string;
  clusterId: string;
  nodeId: string;
  addresses: readonly string[];
  nodeCertExpiryMs: number;
  clock: Clock;
  randomBytes: (size: number) => Uint8Array;
  signal?: AbortSignal;
}): Promise<ClusterCaBootstrap> {
  const authority = createCertificateAuthority({ clock: options.clock, randomBytes: options.randomBytes });
  await saveCertificateAuthority(options.directory, authority, options.signal === undefined ? {} : { signal: options.signal });
  const material = issueLocalNodeMaterial(authority, {
    nodeId: options.nodeId,
    role: "manager",
    clusterId: options.clusterId,
    addresses: options.addresses,
    validityMs: options.nodeCertExpiryMs,
  });
  return {
    authority,
    rootCa: clusterRootCa(authority),
    joinTokens: generateJoinTokens({ caCertDer: authority.certDer, randomBytes: options.randomBytes }),
    material,
  };
}
