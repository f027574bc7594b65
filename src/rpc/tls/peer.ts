import { X509Certificate } from "node:crypto";
import type { PeerCertificate } from "node:tls";

import { InvalidArgumentError, PermissionDeniedError, UnauthenticatedError, errorMessage } from "../../common/errors.js";
import { nodeIdentityOf, type NodeCertificateRole, type NodeIdentity } from "./identity.js";
import { parsePemCertificates } from "./pem.js";

/** What a verifier needs to trust a node certificate. */
export interface NodeTrust {
  /** The root CA certificates the cluster trusts now (more than one during a CA rotation). */
  roots(): readonly X509Certificate[];
  /** Milliseconds since the epoch, for the validity check. */
  now(): number;
  /** When set, certificates of other clusters are refused even if they chain to a root. */
  clusterId?: string;
}

/** The part of a grpc-js server call (or client call) that carries the TLS peer. */
export interface AuthenticatedCall {
  getAuthContext(): { sslPeerCertificate?: PeerCertificate } | null;
}

function validityMs(certificate: X509Certificate): { fromMs: number; toMs: number } {
  return { fromMs: Date.parse(certificate.validFrom), toMs: Date.parse(certificate.validTo) };
}

/**
 * Checks that `certificate` is a shoal node certificate issued by one of the trusted roots,
 * valid now, and (when the trust names one) of the trusted cluster, and returns who it
 * names. Throws UnauthenticatedError saying which check failed.
 */
export function verifyNodeCertificate(certificate: X509Certificate, trust: NodeTrust): NodeIdentity {
  if (certificate.ca) throw new UnauthenticatedError("the peer presented a CA certificate, not a node certificate");
  const issuer = trust.roots().find((root) => certificate.checkIssued(root) && certificate.verify(root.publicKey));
  if (issuer === undefined) throw new UnauthenticatedError("the peer certificate is not signed by this cluster's root CA");
  const now = trust.now();
  const { fromMs, toMs } = validityMs(certificate);
  if (!(now >= fromMs && now <= toMs)) {
    throw new UnauthenticatedError(`the peer certificate is valid from ${certificate.validFrom} to ${certificate.validTo}, not now`);
  }
  const identity = nodeIdentityOf(certificate);
  if (identity === undefined) throw new UnauthenticatedError(`the peer certificate subject "${certificate.subject}" does not name a node`);
  if (trust.clusterId !== undefined && identity.clusterId !== trust.clusterId) {
    throw new UnauthenticatedError(`the peer certificate belongs to cluster ${identity.clusterId}, not ${trust.clusterId}`);
  }
  return identity;
}

/** Parsed peer certificates kept; a cluster's nodes present few distinct ones. */
export const parsedPeerCertificatesMax = 256;
/**
 * Every call checks its caller, and parsing the certificate was the costly part (a worker
 * reports and heartbeats over the same connection many times a second during a rollout).
 * Keyed by the DER bytes, so a renewed certificate is parsed anew; the checks still run
 * on every call, against the trust and time of that call.
 */
const parsedPeerCertificates = new Map<string, X509Certificate>();

function peerCertificateOf(call: AuthenticatedCall): X509Certificate | undefined {
  const raw = call.getAuthContext()?.sslPeerCertificate?.raw;
  if (raw === undefined || raw.length === 0) return undefined;
  const key = raw.toString("base64");
  const parsed = parsedPeerCertificates.get(key);
  if (parsed !== undefined) return parsed;
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(raw);
  } catch (error) {
    throw new UnauthenticatedError(`the peer certificate does not parse: ${errorMessage(error)}`, { cause: error });
  }
  if (parsedPeerCertificates.size >= parsedPeerCertificatesMax) parsedPeerCertificates.clear();
  parsedPeerCertificates.set(key, certificate);
  return certificate;
}

/**
 * The verified identity of the caller, checked against `trust` here rather than relying on
 * the TLS layer: servers that also serve joining nodes accept connections without a
 * client certificate, so the handshake alone proves nothing. Throws UnauthenticatedError
 * when there is no certificate or it fails verification.
 */
export function authenticatePeer(call: AuthenticatedCall, trust: NodeTrust): NodeIdentity {
  const certificate = peerCertificateOf(call);
  if (certificate === undefined) throw new UnauthenticatedError("this call needs a node certificate: join the cluster first");
  return verifyNodeCertificate(certificate, trust);
}

/**
 * The caller's verified identity, or null when it presented no certificate or one that
 * does not verify (use authenticatePeer to learn why).
 */
export function peerIdentity(call: AuthenticatedCall, trust: NodeTrust): NodeIdentity | null {
  try {
    return authenticatePeer(call, trust);
  } catch (error) {
    if (error instanceof UnauthenticatedError) return null;
    throw error;
  }
}

/**
 * The caller's identity when its certificate verifies and names `role` (or one of
 * `role`). Throws UnauthenticatedError without a valid certificate and
 * PermissionDeniedError for another role; grpcErrorOf turns both into gRPC statuses.
 */
export function requireRole(call: AuthenticatedCall, trust: NodeTrust, role: NodeCertificateRole | readonly NodeCertificateRole[]): NodeIdentity {
  const identity = authenticatePeer(call, trust);
  const allowed: readonly NodeCertificateRole[] = typeof role === "string" ? [role] : role;
  if (!allowed.includes(identity.role)) {
    throw new PermissionDeniedError(`node ${identity.nodeId} is a ${identity.role}; this call is for ${allowed.join(" or ")} nodes`);
  }
  return identity;
}

/** peerIdentity, authenticatePeer and requireRole bound to one trust, for handlers to share. */
export interface PeerAuthenticator {
  readonly trust: NodeTrust;
  /** See peerIdentity. */
  peerIdentity(call: AuthenticatedCall): NodeIdentity | null;
  /** See authenticatePeer. */
  authenticate(call: AuthenticatedCall): NodeIdentity;
  /** See requireRole. */
  requireRole(call: AuthenticatedCall, role: NodeCertificateRole | readonly NodeCertificateRole[]): NodeIdentity;
}

export function createPeerAuthenticator(trust: NodeTrust): PeerAuthenticator {
  return {
    trust,
    peerIdentity: (call) => peerIdentity(call, trust),
    authenticate: (call) => authenticatePeer(call, trust),
    requireRole: (call, role) => requireRole(call, trust, role),
  };
}

/**
 * A NodeTrust of the root CA(s) in `caPem`, reading time from `clock`. Throws
 * InvalidArgumentError when the PEM holds no certificate or one that is not a CA.
 */
export function nodeTrustFromPem(options: { caPem: string; clock: { now(): number }; clusterId?: string }): NodeTrust {
  const roots = parsePemCertificates(options.caPem, "the root CA bundle");
  const notCa = roots.find((root) => !root.ca);
  if (notCa !== undefined) throw new InvalidArgumentError(`"${notCa.subject}" in the root CA bundle is not a CA certificate`);
  return {
    roots: () => roots,
    now: () => options.clock.now(),
    ...(options.clusterId === undefined ? {} : { clusterId: options.clusterId }),
  };
}
