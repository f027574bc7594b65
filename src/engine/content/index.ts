export { digestHex, isDigest, parseDigest, sha256Digest } from "./digest.js";
export type { Descriptor, Digest, Platform } from "./digest.js";
export { contentWritersMax, openContentStore } from "./store.js";
export type {
  ContentInfo,
  ContentInfoProvider,
  ContentIngester,
  ContentProvider,
  ContentStore,
  ContentWriter,
  ExpectedContent,
  IngestOptions,
} from "./store.js";
