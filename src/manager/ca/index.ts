export {
  certificateAddressesMax,
  certificateAuthorityFromPem,
  certificateBackdateMs,
  clusterRootCa,
  createCertificateAuthority,
  nodeCertificateValidityMsMax,
  nodeCertificateValidityMsMin,
  rootCaValidityMs,
} from "./authority.js";
export type { CertificateAuthority, NodeCertificateRequest } from "./authority.js";
export {
  generateJoinToken,
  generateJoinTokens,
  joinTokenDigestLength,
  joinTokenLengthMax,
  joinTokenSecretLength,
  matchJoinToken,
  parseJoinToken,
  rootCaTokenDigest,
  rotateJoinToken,
  verifyRootCaForToken,
} from "./join-token.js";
export type { JoinToken } from "./join-token.js";
export { fetchTrustedRootCa, joinWithToken, leafCertificate, nodeCaCallTimeoutMs, nodeCaResponseBytesMax, renewNodeCertificate } from "./node-ca-client.js";
export type { NodeCredentials } from "./node-ca-client.js";
export { createNodeCaService, loadCaProto } from "./node-ca-service.js";
export type { NodeCaServiceOptions } from "./node-ca-service.js";
export { nodeCertificateProofMessage } from "./proof.js";
export { certificateRenewalTime, needsRenewal, renewalLifeFraction } from "./renewal.js";
export { loadCertificateAuthority, rootCaCertFile, rootCaKeyFile, saveCertificateAuthority } from "./storage.js";
export { bootstrapClusterCa, issueLocalNodeMaterial } from "./bootstrap.js";
export type { ClusterCaBootstrap } from "./bootstrap.js";
export { CertificateRenewer, renewalRetryDelayMsMax, renewalRetryDelayMsMin, renewFromManagers } from "./renewer.js";
export type { CertificateRenewerOptions, RenewFunction } from "./renewer.js";
