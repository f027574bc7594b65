export { channelCredentials, managerServerName, renewableChannelCredentials, serverCredentials, tlsChannelOptions, TlsMaterialSource, unverifiedChannelCredentials } from "./credentials.js";
export type { TlsMaterial } from "./credentials.js";
export { loadTlsMaterial, privateFileMode, publicFileMode, readFileIfPresent, saveTlsMaterial, tlsFiles } from "./files.js";
export { grpcErrorOf } from "./grpc-error.js";
export { isIdentityField, nodeCertificateRoles, nodeIdentityOf, roleOrganizationalUnits } from "./identity.js";
export type { NodeCertificateRole, NodeIdentity } from "./identity.js";
export { authenticatePeer, createPeerAuthenticator, nodeTrustFromPem, peerIdentity, requireRole, verifyNodeCertificate } from "./peer.js";
export type { AuthenticatedCall, NodeTrust, PeerAuthenticator } from "./peer.js";
export { certificateToPem, parsePemCertificates, pemCertificatesMax } from "./pem.js";
