import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, X509Certificate, type KeyObject } from "node:crypto";
import { isIP } from "node:net";

import type { Clock } from "../../common/clock.js";
import { InvalidArgumentError } from "../../common/errors.js";
import { certificateToPem, isIdentityField, roleOrganizationalUnits, type NodeCertificateRole } from "../../rpc/tls/index.js";
import type { RootCa } from "../objects/index.js";
import { assertP256Key, buildCertificate, type DistinguishedName } from "./x509.js";

/** Swarm's root CA lifetime. */
export const rootCaValidityMs = 10 * 365 * 24 * 60 * 60 * 1_000;
/** Certificates start this far in the past so that nodes with slow clocks accept them (swarm: 1h). */
export const certificateBackdateMs = 60 * 60 * 1_000;
/** Shortest and longest node certificate lifetimes the CA agrees to (swarm: 1 hour minimum). */
export const nodeCertificateValidityMsMin = 60 * 60 * 1_000;
export const nodeCertificateValidityMsMax = 5 * 365 * 24 * 60 * 60 * 1_000;
/** Addresses one node certificate may name. */
export const certificateAddressesMax = 16;
const serialNumberBytes = 16;
const rootCommonName = "swarm-ca";

const dnsNamePattern = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

export interface NodeCertificateRequest {
  /** The node's own public key (EC P-256); the CA never sees the private key. */
  publicKey: KeyObject;
  nodeId: string;
  role: NodeCertificateRole;
  clusterId: string;
  /** IP addresses and host names the node may be reached at, put into the SAN. */
  addresses: readonly string[];
  validityMs: number;
}

/**
 * The cluster's certificate authority: a P-256 key and a self-signed root certificate. It
 * signs node certificates; it does not decide who may have one (the NodeCA service does).
 */
export interface CertificateAuthority {
  readonly certificate: X509Certificate;
  readonly certPem: string;
  /** The certificate's DER form, which join tokens pin. */
  readonly certDer: Buffer;
  /** PKCS#8 PEM of the CA key: write it only to a 0600 file (see saveCertificateAuthority). */
  keyPem(): string;
  /**
   * Signs a certificate for a node, valid from now minus certificateBackdateMs for
   * `validityMs`. Throws InvalidArgumentError for a key that is not P-256, a bad address,
   * or a validity outside the allowed range.
   */
  issueNodeCertificate(request: NodeCertificateRequest): string;
}

/** The Cluster object's record of the root CA. */
export function clusterRootCa(authority: CertificateAuthority): RootCa {
  return { certPem: authority.certPem, certDigest: `sha256:${createHash("sha256").update(authority.certDer).digest("hex")}` };
}

function serialNumber(randomBytes: (size: number) => Uint8Array): Buffer {
  const bytes = Buffer.from(randomBytes(serialNumberBytes));
  // Positive and never zero: clear the sign bit, set the next one.
  bytes[0] = ((bytes[0] ?? 0) & 0x7f) | 0x40;
  return bytes;
}

function splitAddresses(addresses: readonly string[]): { dnsNames: string[]; ipAddresses: string[] } {
  if (addresses.length > certificateAddressesMax) {
    throw new InvalidArgumentError(`a node certificate names at most ${certificateAddressesMax} addresses, not ${addresses.length}`);
  }
  const dnsNames: string[] = [];
  const ipAddresses: string[] = [];
  for (const address of new Set(addresses)) {
    if (address.includes("%")) throw new InvalidArgumentError(`"${address}" has an IPv6 zone; certificates cannot name one`);
    if (isIP(address) !== 0) ipAddresses.push(address);
    else if (dnsNamePattern.test(address)) dnsNames.push(address.toLowerCase());
    else throw new InvalidArgumentError(`"${address}" is neither an IP address nor a host name; give addresses without port`);
  }
  return { dnsNames, ipAddresses };
}

class CertificateAuthorityImpl implements CertificateAuthority {
  readonly certificate: X509Certificate;
  readonly certPem: string;
  readonly certDer: Buffer;
  readonly #key: KeyObject;
  readonly #publicKey: KeyObject;
  readonly #name: DistinguishedName;
  readonly #clock: Clock;
  readonly #randomBytes: (size: number) => Uint8Array;

  constructor(options: { certificate: X509Certificate; key: KeyObject; clock: Clock; randomBytes: (size: number) => Uint8Array }) {
    this.certificate = options.certificate;
    this.certDer = options.certificate.raw;
    this.certPem = certificateToPem(this.certDer);
    this.#key = options.key;
    this.#publicKey = createPublicKey(options.key);
    this.#name = { commonName: rootCommonName };
    this.#clock = options.clock;
    this.#randomBytes = options.randomBytes;
  }

  keyPem(): string {
    return this.#key.export({ type: "pkcs8", format: "pem" }).toString();
  }

  issueNodeCertificate(request: NodeCertificateRequest): string {
    assertP256Key(request.publicKey, "the node's public key");
    if (!isIdentityField(request.nodeId) || !isIdentityField(request.clusterId)) {
      throw new InvalidArgumentError(`node id "${request.nodeId}" and cluster id "${request.clusterId}" must be lower-case base 36`);
    }
    if (!(request.validityMs >= nodeCertificateValidityMsMin && request.validityMs <= nodeCertificateValidityMsMax)) {
      throw new InvalidArgumentError(
        `node certificate validity must be between ${nodeCertificateValidityMsMin} and ${nodeCertificateValidityMsMax} ms, not ${request.validityMs}`,
      );
    }
    const { dnsNames, ipAddresses } = splitAddresses(request.addresses);
    const unit = roleOrganizationalUnits[request.role];
    const now = this.#clock.now();
    const der = buildCertificate({
      serialNumber: serialNumber(this.#randomBytes),
      issuer: this.#name,
      subject: { organization: request.clusterId, organizationalUnit: unit, commonName: request.nodeId },
      notBeforeMs: now - certificateBackdateMs,
      notAfterMs: Math.min(now + request.validityMs, Date.parse(this.certificate.validTo)),
      subjectPublicKey: request.publicKey,
      issuerPublicKey: this.#publicKey,
      signingKey: this.#key,
      // Swarm names the node id and its role as DNS names; the role name is what clients
      // send as TLS server name (src/rpc/tls managerServerName).
      kind: { type: "leaf", dnsNames: [...new Set([request.nodeId, unit, ...dnsNames])], ipAddresses },
    });
    return certificateToPem(der);
  }
}

/** Makes a new root CA: a fresh P-256 key and a self-signed certificate valid for rootCaValidityMs. */
export function createCertificateAuthority(options: { clock: Clock; randomBytes: (size: number) => Uint8Array }): CertificateAuthority {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const now = options.clock.now();
  const name: DistinguishedName = { commonName: rootCommonName };
  const der = buildCertificate({
    serialNumber: serialNumber(options.randomBytes),
    issuer: name,
    subject: name,
    notBeforeMs: now - certificateBackdateMs,
    notAfterMs: now + rootCaValidityMs,
    subjectPublicKey: publicKey,
    issuerPublicKey: publicKey,
    signingKey: privateKey,
    kind: { type: "ca" },
  });
  return new CertificateAuthorityImpl({ certificate: new X509Certificate(der), key: privateKey, ...options });
}

/**
 * Rebuilds a CA from its PEM certificate and key. Throws InvalidArgumentError when either
 * does not parse, the certificate is not a CA, or the key does not belong to it.
 */
export function certificateAuthorityFromPem(options: {
  certPem: string;
  keyPem: string;
  clock: Clock;
  randomBytes: (size: number) => Uint8Array;
}): CertificateAuthority {
  let certificate: X509Certificate;
  let key: KeyObject;
  try {
    certificate = new X509Certificate(options.certPem);
    key = createPrivateKey(options.keyPem);
  } catch (error) {
    throw new InvalidArgumentError("the root CA certificate or key does not parse", { cause: error });
  }
  if (!certificate.ca) throw new InvalidArgumentError("the root CA certificate is not a CA certificate");
  assertP256Key(key, "the root CA key");
  if (!certificate.checkPrivateKey(key)) throw new InvalidArgumentError("the root CA key does not match its certificate");
  return new CertificateAuthorityImpl({ certificate, key, clock: options.clock, randomBytes: options.randomBytes });
}
