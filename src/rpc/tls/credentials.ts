import { X509Certificate } from "node:crypto";
import type { PeerCertificate } from "node:tls";

import { ChannelCredentials, experimental, type ServerCredentials } from "@grpc/grpc-js";

import { InvalidArgumentError, errorMessage } from "../../common/errors.js";
import { nodeIdentityOf, roleOrganizationalUnits, type NodeCertificateRole } from "./identity.js";
import { parsePemCertificates } from "./pem.js";

/** The PEM files of one node: the cluster root CA, its own certificate chain and key. */
export interface TlsMaterial {
  caPem: string;
  certPem: string;
  keyPem: string;
}

/**
 * The TLS server name clients ask for. Node addresses change, so clients do not check
 * hostnames; they send this fixed name (manager certificates carry it as a DNS SAN) so that
 * no IP address is ever used as SNI, which RFC 6066 forbids.
 */
export const managerServerName = roleOrganizationalUnits.manager;

/** Channel options every shoal client channel to a manager uses together with channelCredentials. */
export const tlsChannelOptions: Readonly<Record<string, string>> = {
  "grpc.ssl_target_name_override": managerServerName,
};

function checkTlsMaterial(material: TlsMaterial): void {
  parsePemCertificates(material.caPem, "the root CA bundle");
  parsePemCertificates(material.certPem, "the node certificate chain");
  if (!material.keyPem.includes("PRIVATE KEY-----")) throw new InvalidArgumentError("the node key is not a PEM private key");
}

/** Only the three PEMs: callers may pass richer objects (NodeCredentials) that must not leak in. */
function pickTlsMaterial(material: TlsMaterial): TlsMaterial {
  return { caPem: material.caPem, certPem: material.certPem, keyPem: material.keyPem };
}

type CaListener = Parameters<experimental.CertificateProvider["addCaCertificateListener"]>[0];
type IdentityListener = Parameters<experimental.CertificateProvider["addIdentityCertificateListener"]>[0];

/**
 * Holds a node's current TLS material for grpc-js servers. `update` swaps in a renewed
 * certificate (or a rotated root) without restarting the server: new handshakes use it,
 * established connections keep the old one.
 */
export class TlsMaterialSource implements experimental.CertificateProvider {
  #material: TlsMaterial;
  readonly #caListeners = new Set<CaListener>();
  readonly #identityListeners = new Set<IdentityListener>();

  /** Throws InvalidArgumentError when a PEM does not parse. */
  constructor(material: TlsMaterial) {
    checkTlsMaterial(material);
    this.#material = pickTlsMaterial(material);
  }

  get material(): TlsMaterial {
    return { ...this.#material };
  }

  /** Replaces the material and tells every server using it. Throws InvalidArgumentError on bad PEM. */
  update(material: TlsMaterial): void {
    checkTlsMaterial(material);
    this.#material = pickTlsMaterial(material);
    for (const listener of this.#caListeners) listener(this.#caUpdate());
    for (const listener of this.#identityListeners) listener(this.#identityUpdate());
  }

  #caUpdate(): { caCertificate: Buffer } {
    return { caCertificate: Buffer.from(this.#material.caPem) };
  }

  #identityUpdate(): { certificate: Buffer; privateKey: Buffer } {
    return { certificate: Buffer.from(this.#material.certPem), privateKey: Buffer.from(this.#material.keyPem) };
  }

  /**
   * The current material is delivered on a microtask, not synchronously: grpc-js registers
   * its server's watcher only after adding these listeners, so a synchronous delivery would
   * be lost and the server would drop every connection until the first update().
   */
  addCaCertificateListener(listener: CaListener): void {
    this.#caListeners.add(listener);
    queueMicrotask(() => {
      if (this.#caListeners.has(listener)) listener(this.#caUpdate());
    });
  }

  removeCaCertificateListener(listener: CaListener): void {
    this.#caListeners.delete(listener);
  }

  addIdentityCertificateListener(listener: IdentityListener): void {
    this.#identityListeners.add(listener);
    queueMicrotask(() => {
      if (this.#identityListeners.has(listener)) listener(this.#identityUpdate());
    });
  }

  removeIdentityCertificateListener(listener: IdentityListener): void {
    this.#identityListeners.delete(listener);
  }
}

/**
 * Server credentials for a node. The server always asks for a client certificate. With
 * `requireClientCert: true` the handshake refuses clients without one signed by the root
 * CA. With `false` every client gets in, with or without a certificate (TLS does not
 * check it; the NodeCA service needs this for joining nodes), so every handler that is
 * not for joining nodes must authenticate the caller itself with requireRole /
 * authenticatePeer, which verify the chain.
 */
export function serverCredentials(options: (TlsMaterial | { source: TlsMaterialSource }) & { requireClientCert: boolean }): ServerCredentials {
  const source = "source" in options ? options.source : new TlsMaterialSource(options);
  return experimental.createCertificateProviderServerCredentials(source, source, options.requireClientCert);
}

/**
 * Checks the server's certificate after TLS has verified its chain against the root CA:
 * it must be a manager certificate (only managers serve) of `clusterId` when given.
 * Hostnames are not checked because node addresses change.
 */
function checkManagerIdentity(options: { clusterId?: string; role: NodeCertificateRole }): (host: string, peer: PeerCertificate) => Error | undefined {
  return (_host, peer) => {
    let certificate: X509Certificate;
    try {
      certificate = new X509Certificate(peer.raw);
    } catch (error) {
      return new Error(`the server certificate does not parse: ${errorMessage(error)}`, { cause: error });
    }
    const identity = nodeIdentityOf(certificate);
    if (identity === undefined) return new Error(`the server certificate "${certificate.subject}" does not name a shoal node`);
    if (identity.role !== options.role) return new Error(`the server ${identity.nodeId} is a ${identity.role}, not a ${options.role}`);
    if (options.clusterId !== undefined && identity.clusterId !== options.clusterId) {
      return new Error(`the server belongs to cluster ${identity.clusterId}, not ${options.clusterId}`);
    }
    return undefined;
  };
}

/**
 * Client credentials for calling a manager: the server's chain must lead to `caPem`, and
 * its certificate must name a node of the expected role (manager by default) and cluster.
 * Without certPem/keyPem the client shows no certificate (a joining node). Use with
 * tlsChannelOptions.
 */
export function channelCredentials(options: {
  caPem: string;
  certPem?: string;
  keyPem?: string;
  clusterId?: string;
  serverRole?: NodeCertificateRole;
}): ChannelCredentials {
  parsePemCertificates(options.caPem, "the root CA bundle");
  if ((options.certPem === undefined) !== (options.keyPem === undefined)) {
    throw new InvalidArgumentError("give both the node certificate and its key, or neither");
  }
  const checkOptions = { role: options.serverRole ?? "manager", ...(options.clusterId === undefined ? {} : { clusterId: options.clusterId }) };
  return ChannelCredentials.createSsl(
    Buffer.from(options.caPem),
    options.keyPem === undefined ? null : Buffer.from(options.keyPem),
    options.certPem === undefined ? null : Buffer.from(options.certPem),
    { checkServerIdentity: checkManagerIdentity(checkOptions) },
  );
}

/**
 * Client credentials that read this node's certificate from `source` at every new
 * connection, so that long-lived channels present the renewed certificate once the renewer
 * replaced it, instead of the one the process started with (which would expire under a
 * long-running manager). The server must be a manager of `clusterId`. Use with
 * tlsChannelOptions.
 */
export function renewableChannelCredentials(options: { source: TlsMaterialSource; clusterId: string }): ChannelCredentials {
  return experimental.createCertificateProviderChannelCredentials(options.source, options.source, {
    checkServerIdentity: checkManagerIdentity({ role: "manager", clusterId: options.clusterId }),
  });
}

/**
 * TLS without verifying the server, for the single call a joining node makes before it
 * trusts anything: fetching the root CA certificate, which it then checks against the
 * digest in its join token. Never send a secret over these credentials.
 */
export function unverifiedChannelCredentials(): ChannelCredentials {
  return ChannelCredentials.createSsl(null, null, null, { rejectUnauthorized: false });
}
