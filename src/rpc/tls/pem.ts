import { X509Certificate } from "node:crypto";

import { InvalidArgumentError } from "../../common/errors.js";

/** Certificates in one chain or bundle; a node chain is its cert plus the root, so few. */
export const pemCertificatesMax = 8;

const pemCertificatePattern = /-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+?-----END CERTIFICATE-----/g;

/** PEM text of one DER certificate. */
export function certificateToPem(der: Uint8Array): string {
  const base64 = Buffer.from(der).toString("base64");
  const lines = base64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN CERTIFICATE-----\n${lines.join("\n")}\n-----END CERTIFICATE-----\n`;
}

/**
 * Parses every certificate of a PEM bundle, in order. Throws InvalidArgumentError (naming
 * `what`) when there is none, more than pemCertificatesMax, or one does not parse.
 */
export function parsePemCertificates(pem: string, what: string): X509Certificate[] {
  const blocks = pem.match(pemCertificatePattern) ?? [];
  if (blocks.length === 0) throw new InvalidArgumentError(`${what} holds no PEM certificate`);
  if (blocks.length > pemCertificatesMax) {
    throw new InvalidArgumentError(`${what} holds ${blocks.length} certificates, more than ${pemCertificatesMax}`);
  }
  return blocks.map((block, index) => {
    try {
      return new X509Certificate(block);
    } catch (error) {
      throw new InvalidArgumentError(`certificate ${index + 1} of ${what} does not parse`, { cause: error });
    }
  });
}
