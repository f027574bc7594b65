import type { X509Certificate } from "node:crypto";

/**
 * Who a node certificate names, as swarm lays it out: O = cluster id, OU = role,
 * CN = node id. The dispatcher and the raft transport trust these fields only after the
 * certificate chains to the cluster's root CA (see peer.ts).
 */
export interface NodeIdentity {
  nodeId: string;
  role: NodeCertificateRole;
  clusterId: string;
}

export const nodeCertificateRoles = ["manager", "worker"] as const;
export type NodeCertificateRole = (typeof nodeCertificateRoles)[number];

/** The OU values swarm uses, so that certificates read the same to swarm tooling. */
export const roleOrganizationalUnits: Readonly<Record<NodeCertificateRole, string>> = {
  manager: "swarm-manager",
  worker: "swarm-worker",
};

function roleOfUnit(unit: string): NodeCertificateRole | undefined {
  return nodeCertificateRoles.find((role) => roleOrganizationalUnits[role] === unit);
}

/** Ids are base36 (swarm style); anything else in a subject field is not a shoal node cert. */
const identityFieldPattern = /^[a-z0-9]{1,64}$/;

/** Whether `value` can be a node or cluster id in a certificate (lower-case base 36, 1..64 characters). */
export function isIdentityField(value: string): boolean {
  return identityFieldPattern.test(value);
}

/**
 * Reads the node identity from a certificate's subject, or returns undefined when the
 * subject is not exactly O, OU and CN with a known role. Does not check the chain.
 */
export function nodeIdentityOf(certificate: X509Certificate): NodeIdentity | undefined {
  const fields = new Map<string, string>();
  for (const line of certificate.subject.split("\n")) {
    const separator = line.indexOf("=");
    if (separator <= 0) return undefined;
    const key = line.slice(0, separator);
    if (fields.has(key)) return undefined;
    fields.set(key, line.slice(separator + 1));
  }
  if (fields.size !== 3) return undefined;
  const clusterId = fields.get("O");
  const unit = fields.get("OU");
  const nodeId = fields.get("CN");
  if (clusterId === undefined || unit === undefined || nodeId === undefined) return undefined;
  const role = roleOfUnit(unit);
  if (role === undefined) return undefined;
  if (!identityFieldPattern.test(clusterId) || !identityFieldPattern.test(nodeId)) return undefined;
  return { nodeId, role, clusterId };
}
