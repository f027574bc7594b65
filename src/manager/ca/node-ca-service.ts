import { createPublicKey, verify, type KeyObject } from "node:crypto";

import type { Clock } from "../../common/clock.js";
import { FailedPreconditionError, InvalidArgumentError, PermissionDeniedError, UnavailableError, errorMessage } from "../../common/errors.js";
import type { Logger } from "../../common/logger.js";
import type { ProtoGrpcType as CaProto } from "../../gen/ca.js";
import type { IssueNodeCertificateRequest__Output } from "../../gen/shoal/v1/IssueNodeCertificateRequest.js";
import type { IssueNodeCertificateResponse } from "../../gen/shoal/v1/IssueNodeCertificateResponse.js";
import type { NodeCAHandlers } from "../../gen/shoal/v1/NodeCA.js";
import { loadProto } from "../../rpc/proto.js";
import type { GrpcService } from "../../rpc/server.js";
import { authenticatePeer, grpcErrorOf, type AuthenticatedCall } from "../../rpc/tls/index.js";
import { nodeAvailabilities, type Cluster, type NodeAvailability, type NodeRole } from "../objects/index.js";
import type { MemoryStore } from "../store/index.js";
import { certificateAddressesMax, type CertificateAuthority } from "./authority.js";
import { matchJoinToken, parseJoinToken } from "./join-token.js";
import { addressLengthMax, nodeCertificateProofMessage, proofBytesMax, publicKeyBytesMax } from "./proof.js";

export interface NodeCaServiceOptions {
  store: MemoryStore;
  authority: CertificateAuthority;
  logger: Logger;
  clock: Clock;
  /** Makes the id of a joining node (the store's id generator in production). */
  newNodeId: () => string;
}

interface ParsedIssueRequest {
  token: string;
  publicKey: KeyObject;
  addresses: string[];
  availability: NodeAvailability;
}

let caProto: CaProto | undefined;

/** The NodeCA service definition, loaded once. */
export function loadCaProto(): CaProto {
  caProto ??= loadProto<CaProto>("shoal/v1/ca.proto");
  return caProto;
}

/** The availability a join asks for; a renewal keeps the node's own and may not ask. */
function parseJoinAvailability(request: IssueNodeCertificateRequest__Output): NodeAvailability {
  if (request.availability === "") return "active";
  if (request.token === "") throw new InvalidArgumentError("availability is only given when joining with a token; change it with \"node update --availability\"");
  const availability = nodeAvailabilities.find((candidate) => candidate === request.availability);
  if (availability === undefined) throw new InvalidArgumentError(`availability "${request.availability.slice(0, 40)}" is not active, pause or drain`);
  return availability;
}

function parseIssueRequest(request: IssueNodeCertificateRequest__Output): ParsedIssueRequest {
  if (request.publicKey.length === 0 || request.publicKey.length > publicKeyBytesMax) {
    throw new InvalidArgumentError(`public_key must hold a DER SubjectPublicKeyInfo of at most ${publicKeyBytesMax} bytes`);
  }
  if (request.proof.length === 0 || request.proof.length > proofBytesMax) {
    throw new InvalidArgumentError(`proof must hold a DER ECDSA signature of at most ${proofBytesMax} bytes`);
  }
  if (request.addresses.length > certificateAddressesMax || request.addresses.some((address) => address.length > addressLengthMax)) {
    throw new InvalidArgumentError(`give at most ${certificateAddressesMax} addresses of at most ${addressLengthMax} characters`);
  }
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: request.publicKey, format: "der", type: "spki" });
  } catch (error) {
    throw new InvalidArgumentError("public_key is not a DER SubjectPublicKeyInfo", { cause: error });
  }
  const message = nodeCertificateProofMessage(request.token, request.publicKey);
  let proven = false;
  try {
    proven = verify("sha256", message, { key: publicKey, dsaEncoding: "der" }, request.proof);
  } catch (error) {
    throw new InvalidArgumentError(`proof does not verify with public_key: ${errorMessage(error)}`, { cause: error });
  }
  if (!proven) throw new InvalidArgumentError("proof is not a signature of the request by the key in public_key");
  return { token: request.token, publicKey, addresses: [...request.addresses], availability: parseJoinAvailability(request) };
}

/** "ipv4:10.0.0.5:4242", "[::1]:4242", "10.0.0.5:4242" -> the host part. */
function peerHost(peer: string): string {
  const withoutScheme = peer.replace(/^ipv[46]:/, "");
  const bracketed = /^\[([^\]]+)\]/.exec(withoutScheme);
  if (bracketed?.[1] !== undefined) return bracketed[1];
  const colon = withoutScheme.lastIndexOf(":");
  return colon > 0 ? withoutScheme.slice(0, colon) : withoutScheme;
}

/**
 * The NodeCA gRPC service. Joining nodes are registered in the store (a Node object with
 * the token's role) before their certificate is signed, so a node id is never certified
 * without being known to the cluster. Writes go through the store, so on a multi-manager
 * cluster only the leader can admit nodes (others answer UNAVAILABLE).
 */
export function createNodeCaService(options: NodeCaServiceOptions): GrpcService {
  const logger = options.logger.child({ component: "node-ca" });
  const issuer = new NodeCaIssuer(options, logger);
  const handlers: NodeCAHandlers = {
    GetRootCACertificate(_call, callback) {
      callback(null, { certificate: options.authority.certPem });
    },
    IssueNodeCertificate(call, callback) {
      issuer.issue(call.request, call, call.getPeer()).then(
        (response) => callback(null, response),
        (error: unknown) => {
          logger.info({ err: error, peer: call.getPeer() }, "node certificate refused");
          callback(grpcErrorOf(error));
        },
      );
    },
  };
  return { definition: loadCaProto().shoal.v1.NodeCA.service, handlers };
}

class NodeCaIssuer {
  readonly #options: NodeCaServiceOptions;
  readonly #logger: Logger;

  constructor(options: NodeCaServiceOptions, logger: Logger) {
    this.#options = options;
    this.#logger = logger;
  }

  #cluster(): Cluster {
    const clusters = this.#options.store.view((tx) => tx.find("cluster"));
    const cluster = clusters[0];
    if (cluster === undefined || clusters.length !== 1) {
      throw new FailedPreconditionError("this manager has no cluster yet: run \"shoal swarm init\" first");
    }
    if (cluster.rootCa?.certPem !== this.#options.authority.certPem) {
      throw new UnavailableError("this manager's CA is not the cluster's root CA: ask another manager");
    }
    return cluster;
  }

  async issue(request: IssueNodeCertificateRequest__Output, call: AuthenticatedCall, peer: string): Promise<IssueNodeCertificateResponse> {
    const parsed = parseIssueRequest(request);
    const cluster = this.#cluster();
    const { nodeId, role } = parsed.token === "" ? this.#renewing(call, cluster) : await this.#joining(parsed, cluster, peer);
    const { authority } = this.#options;
    const certPem = authority.issueNodeCertificate({
      publicKey: parsed.publicKey,
      nodeId,
      role,
      clusterId: cluster.id,
      addresses: parsed.addresses,
      validityMs: cluster.spec.nodeCertExpiryMs,
    });
    // Workers renew every few seconds to learn a promotion: only joins are worth info.
    if (parsed.token === "") this.#logger.debug({ nodeId, role, renewal: true }, "node certificate issued");
    else this.#logger.info({ nodeId, role, renewal: false }, "node certificate issued");
    return { nodeId, role, clusterId: cluster.id, certificateChain: certPem + authority.certPem, rootCaCertificate: authority.certPem };
  }

  async #joining(request: ParsedIssueRequest, cluster: Cluster, peer: string): Promise<{ nodeId: string; role: NodeRole }> {
    const role = matchJoinToken(parseJoinToken(request.token), cluster.joinTokens, this.#options.authority.certDer);
    if (role === undefined) {
      throw new PermissionDeniedError("the join token is not valid for this cluster (it may have been rotated): get the current one with \"shoal swarm join-token\"");
    }
    const nodeId = this.#options.newNodeId();
    await this.#options.store.update((tx) =>
      tx.create("node", {
        id: nodeId,
        spec: { name: "", labels: {}, role, availability: request.availability },
        status: { state: "unknown", addr: peerHost(peer), message: "certificate issued; waiting for the node's first session" },
      }),
    );
    return { nodeId, role };
  }

  /** Renewal: the node keeps its id and gets the role the cluster now wants it to have. */
  #renewing(call: AuthenticatedCall, cluster: Cluster): { nodeId: string; role: NodeRole } {
    const { authority, clock } = this.#options;
    const identity = authenticatePeer(call, { roots: () => [authority.certificate], now: () => clock.now(), clusterId: cluster.id });
    const node = this.#options.store.view((tx) => tx.get("node", identity.nodeId));
    if (node === undefined) {
      throw new PermissionDeniedError(`node ${identity.nodeId} has been removed from the cluster: join it again with a token`);
    }
    return { nodeId: node.id, role: node.spec.role };
  }
}
