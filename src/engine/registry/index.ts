export {
  createRegistryClient,
  manifestAcceptTypes,
  parseChallenge,
  registryBlobIdleTimeoutMs,
  registryManifestBytesMax,
  registryRequestTimeoutMs,
  registryTokenBytesMax,
  registryTokensMax,
} from "./client.js";
export type { FetchedManifest, ManifestHead, RegistryClient, RegistryClientOptions, RegistryCredentials } from "./client.js";
export {
  dockerHubApiHost,
  dockerHubRegistry,
  familiarReference,
  formatReference,
  parseReference,
  referenceBytesMax,
  referenceName,
} from "./reference.js";
export type { ImageReference } from "./reference.js";
