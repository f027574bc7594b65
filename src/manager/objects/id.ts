/** Object ids are 128 random bits in base 36, padded to 25 characters, as swarm's are. */
export const objectIdLength = 25;
const idRandomBytes = 16;

/** Returns a function that makes a new object id from `randomBytes` (crypto.randomBytes in production). */
export function createIdGenerator(randomBytes: (size: number) => Uint8Array): () => string {
  return () => {
    const bytes = randomBytes(idRandomBytes);
    let value = 0n;
    for (const byte of bytes) value = (value << 8n) | BigInt(byte);
    return value.toString(36).padStart(objectIdLength, "0");
  };
}
