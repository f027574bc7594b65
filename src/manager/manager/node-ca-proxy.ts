import { status as grpcStatus, type ChannelCredentials, type ServiceError } from "@grpc/grpc-js";

import type { Clock } from "../../common/clock.js";
import type { Logger } from "../../common/logger.js";
import type { IssueNodeCertificateRequest__Output } from "../../gen/shoal/v1/IssueNodeCertificateRequest.js";
import type { IssueNodeCertificateResponse__Output } from "../../gen/shoal/v1/IssueNodeCertificateResponse.js";
import type { NodeCAHandlers } from "../../gen/shoal/v1/NodeCA.js";
import type { GrpcService } from "../../rpc/server.js";
import { tlsChannelOptions } from "../../rpc/tls/index.js";
import { loadCaProto } from "../ca/index.js";
import { managerCallTimeoutMs } from "./unary.js";

/**
 * Wraps the NodeCA service so that a follower hands joins to the leader, as swarmkit's raft
 * proxy does: admitting a node writes its Node object, which only the leader can. The
 * request is self-contained (the proof binds the token to the node's public key), so
 * relaying it proves nothing new. Renewals (no token) are answered locally: they write
 * nothing and are authenticated by the caller's own certificate, which a relay would lose.
 */
export function proxyNodeCaJoins(options: {
  service: GrpcService;
  /** The leader's address while this manager follows; undefined when it leads or no leader is known. */
  leaderAddress: () => string | undefined;
  credentials: ChannelCredentials;
  clock: Clock;
  logger: Logger;
}): GrpcService {
  const logger = options.logger.child({ component: "node-ca-proxy" });
  const local = options.service.handlers as Partial<NodeCAHandlers>;
  const issueLocally = local.IssueNodeCertificate;
  if (issueLocally === undefined) return options.service;
  const IssueNodeCertificate: NodeCAHandlers["IssueNodeCertificate"] = (call, callback) => {
    const request: IssueNodeCertificateRequest__Output = call.request;
    const leader = options.leaderAddress();
    if (request.token === "" || leader === undefined) {
      issueLocally(call, callback);
      return;
    }
    const NodeCA = loadCaProto().shoal.v1.NodeCA;
    const client = new NodeCA(leader, options.credentials, { ...tlsChannelOptions });
    const deadline = new Date(options.clock.now() + managerCallTimeoutMs);
    const relayed = client.IssueNodeCertificate(request, { deadline }, (error: ServiceError | null, response?: IssueNodeCertificateResponse__Output) => {
      client.close();
      if (error !== null) {
        callback({ code: error.code, details: error.details, message: error.details });
      } else if (response === undefined) {
        callback({ code: grpcStatus.UNAVAILABLE, details: "the leader answered nothing", message: "the leader answered nothing" });
      } else {
        callback(null, response);
      }
    });
    call.on("cancelled", () => relayed.cancel());
    logger.debug({ leader, peer: call.getPeer() }, "relaying a join to the leader's CA");
  };
  return { definition: options.service.definition, handlers: { ...options.service.handlers, IssueNodeCertificate } };
}
