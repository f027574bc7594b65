import assert from "node:assert/strict";
import { createHash, sign, type KeyObject } from "node:crypto";
import { isIPv4, isIPv6 } from "node:net";

import { InvalidArgumentError } from "../../common/errors.js";
import {
  derBoolean,
  derExplicit,
  derImplicit,
  derInteger,
  derNamedBits,
  derOctetString,
  derOid,
  derSequence,
  derSet,
  derBitString,
  derTime,
  derUtf8String,
} from "./der.js";

/** Builds X.509 v3 certificates (RFC 5280) signed with ECDSA P-256 / SHA-256. */

const oidEcdsaWithSha256 = "1.2.840.10045.4.3.2";
const oidCommonName = "2.5.4.3";
const oidOrganization = "2.5.4.10";
const oidOrganizationalUnit = "2.5.4.11";
const oidSubjectKeyIdentifier = "2.5.29.14";
const oidKeyUsage = "2.5.29.15";
const oidSubjectAltName = "2.5.29.17";
const oidBasicConstraints = "2.5.29.19";
const oidAuthorityKeyIdentifier = "2.5.29.35";
const oidExtendedKeyUsage = "2.5.29.37";
const oidServerAuth = "1.3.6.1.5.5.7.3.1";
const oidClientAuth = "1.3.6.1.5.5.7.3.2";

/** KeyUsage bit numbers (RFC 5280 §4.2.1.3). */
const keyUsageDigitalSignature = 0;
const keyUsageKeyCertSign = 5;
const keyUsageCrlSign = 6;

/** GeneralName tags (RFC 5280 §4.2.1.6). */
const generalNameDns = 2;
const generalNameIp = 7;

/** A distinguished name in the order it is encoded; shoal uses only O, OU and CN. */
export interface DistinguishedName {
  organization?: string;
  organizationalUnit?: string;
  commonName: string;
}

export interface CertificateTemplate {
  /** Positive, at most 20 bytes (RFC 5280 §4.1.2.2). */
  serialNumber: Buffer;
  issuer: DistinguishedName;
  subject: DistinguishedName;
  notBeforeMs: number;
  notAfterMs: number;
  subjectPublicKey: KeyObject;
  /** The issuer's public key, for the authority key identifier (the subject's own when self-signed). */
  issuerPublicKey: KeyObject;
  signingKey: KeyObject;
  /** A CA certificate may sign other certificates; a leaf is for TLS client and server use. */
  kind: { type: "ca" } | { type: "leaf"; dnsNames: readonly string[]; ipAddresses: readonly string[] };
}

function encodeName(name: DistinguishedName): Buffer {
  const attributes: Array<[string, string]> = [];
  if (name.organization !== undefined) attributes.push([oidOrganization, name.organization]);
  if (name.organizationalUnit !== undefined) attributes.push([oidOrganizationalUnit, name.organizationalUnit]);
  attributes.push([oidCommonName, name.commonName]);
  return derSequence(...attributes.map(([oid, value]) => derSet(derSequence(derOid(oid), derUtf8String(value)))));
}

/** Accepts only EC P-256 keys: the one algorithm the CA signs and verifies with. */
export function assertP256Key(key: KeyObject, what: string): void {
  if (key.asymmetricKeyType !== "ec" || key.asymmetricKeyDetails?.namedCurve !== "prime256v1") {
    throw new InvalidArgumentError(`${what} must be an ECDSA P-256 key`);
  }
}

/** The SubjectPublicKeyInfo of a public key, as DER. */
function subjectPublicKeyInfo(publicKey: KeyObject): Buffer {
  return publicKey.export({ type: "spki", format: "der" });
}

/** RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits (the uncompressed point). */
function keyIdentifier(publicKey: KeyObject): Buffer {
  const jwk = publicKey.export({ format: "jwk" });
  assert.ok(typeof jwk.x === "string" && typeof jwk.y === "string", "EC public key without coordinates");
  const point = Buffer.concat([Buffer.from([0x04]), Buffer.from(jwk.x, "base64url"), Buffer.from(jwk.y, "base64url")]);
  return createHash("sha1").update(point).digest();
}

function extension(oid: string, critical: boolean, value: Buffer): Buffer {
  return critical ? derSequence(derOid(oid), derBoolean(true), derOctetString(value)) : derSequence(derOid(oid), derOctetString(value));
}

function encodeIpAddress(address: string): Buffer {
  if (isIPv4(address)) return Buffer.from(address.split(".").map(Number));
  assert.ok(isIPv6(address), `not an IP address: ${address}`);
  const [head = "", tail] = address.split("::");
  // An embedded IPv4 tail ("::ffff:10.0.0.1") stands for the last two groups.
  const groups = (part: string): number[] =>
    part === ""
      ? []
      : part.split(":").flatMap((group) => {
          if (!group.includes(".")) return [Number.parseInt(group, 16)];
          const [a = 0, b = 0, c = 0, d = 0] = group.split(".").map(Number);
          return [a * 256 + b, c * 256 + d];
        });
  const left = groups(head);
  const right = tail === undefined ? [] : groups(tail);
  const middle = new Array<number>(8 - left.length - right.length).fill(0);
  const all = [...left, ...middle, ...right];
  assert.equal(all.length, 8, `unsupported IPv6 form: ${address}`);
  const bytes = Buffer.alloc(16);
  all.forEach((group, index) => bytes.writeUInt16BE(group, index * 2));
  return bytes;
}

function encodeExtensions(template: CertificateTemplate): Buffer {
  const { kind } = template;
  const subjectKeyId = extension(oidSubjectKeyIdentifier, false, derOctetString(keyIdentifier(template.subjectPublicKey)));
  const authorityKeyId = extension(oidAuthorityKeyIdentifier, false, derSequence(derImplicit(0, keyIdentifier(template.issuerPublicKey))));
  if (kind.type === "ca") {
    return derExplicit(
      3,
      derSequence(
        extension(oidBasicConstraints, true, derSequence(derBoolean(true), derInteger(1))),
        extension(oidKeyUsage, true, derNamedBits([keyUsageDigitalSignature, keyUsageKeyCertSign, keyUsageCrlSign])),
        subjectKeyId,
        authorityKeyId,
      ),
    );
  }
  const names = [
    ...kind.dnsNames.map((name) => derImplicit(generalNameDns, Buffer.from(name, "ascii"))),
    ...kind.ipAddresses.map((address) => derImplicit(generalNameIp, encodeIpAddress(address))),
  ];
  const extensions = [
    extension(oidBasicConstraints, true, derSequence()),
    extension(oidKeyUsage, true, derNamedBits([keyUsageDigitalSignature])),
    extension(oidExtendedKeyUsage, false, derSequence(derOid(oidServerAuth), derOid(oidClientAuth))),
    subjectKeyId,
    authorityKeyId,
  ];
  if (names.length > 0) extensions.push(extension(oidSubjectAltName, false, derSequence(...names)));
  return derExplicit(3, derSequence(...extensions));
}

/** Encodes the certificate, signs it with `signingKey`, and returns it as DER. */
export function buildCertificate(template: CertificateTemplate): Buffer {
  assertP256Key(template.subjectPublicKey, "the certificate's public key");
  assertP256Key(template.signingKey, "the signing key");
  assert.ok(template.serialNumber.length > 0 && template.serialNumber.length <= 20, "serial number must be 1..20 bytes");
  assert.ok(template.notBeforeMs < template.notAfterMs, "notBefore must precede notAfter");
  const signatureAlgorithm = derSequence(derOid(oidEcdsaWithSha256));
  const tbs = derSequence(
    derExplicit(0, derInteger(2)),
    derInteger(BigInt(`0x${template.serialNumber.toString("hex")}`)),
    signatureAlgorithm,
    encodeName(template.issuer),
    derSequence(derTime(template.notBeforeMs), derTime(template.notAfterMs)),
    encodeName(template.subject),
    subjectPublicKeyInfo(template.subjectPublicKey),
    encodeExtensions(template),
  );
  const signature = sign("sha256", tbs, { key: template.signingKey, dsaEncoding: "der" });
  return derSequence(tbs, signatureAlgorithm, derBitString(signature));
}
