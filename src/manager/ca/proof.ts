/**
 * What a node signs to prove it holds the private key of the public key it asks the CA to
 * certify. The token is inside, so a proof made for one join cannot be replayed with
 * another token.
 */
export function nodeCertificateProofMessage(token: string, publicKeyDer: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from(`shoal-node-ca-v1\n${token}\n`, "utf8"), publicKeyDer]);
}

/** DER SubjectPublicKeyInfo of a P-256 key is 91 bytes; anything far larger is refused unread. */
export const publicKeyBytesMax = 512;
/** DER ECDSA P-256 signatures are at most 72 bytes. */
export const proofBytesMax = 256;
/** Longest address string (a DNS name's limit). */
export const addressLengthMax = 253;
