import { X509Certificate } from "node:crypto";
import type { PeerCertificate } from "node:tls";

import { experimental, type ChannelCredentials } from "@grpc/grpc-js";

import { errorMessage } from "../../common/errors.js";
import { nodeIdentityOf, type TlsMaterialSource } from "../../rpc/tls/index.js";

/** Accepts a server only when its certificate (already chained to the root by TLS) names a manager of `clusterId`. */
function checkManagerServer(clusterId: string): (host: string, peer: PeerCertificate) => Error | undefined {
  return (_host, peer) => {
    let certificate: X509Certificate;
    try {
      certificate = new X509Certificate(peer.raw);
    } catch (error) {
      return new Error(`the server certificate does not parse: ${errorMessage(error)}`, { cause: error });
    }
    const identity = nodeIdentityOf(certificate);
    if (identity === undefined) return new Error(`the server certificate "${certificate.subject}" does not name a shoal node`);
    if (identity.role !== "manager") return new Error(`the server ${identity.nodeId} is a ${identity.role}, not a manager`);
    if (identity.clusterId !== clusterId) return new Error(`the server belongs to cluster ${identity.clusterId}, not ${clusterId}`);
    return undefined;
  };
}

/**
 * Client credentials that read this node's certificate from `source` at every new
 * connection, so that raft and membership channels present the renewed certificate once the
 * renewer replaced it, instead of the one the manager started with (which would expire
 * under a long-running manager). Use with tlsChannelOptions.
 */
export function renewableChannelCredentials(options: { source: TlsMaterialSource; clusterId: string }): ChannelCredentials {
  return experimental.createCertificateProviderChannelCredentials(options.source, options.source, {
    checkServerIdentity: checkManagerServer(options.clusterId),
  });
}
