import { addAbortListener } from "node:events";
import { generateKeyPairSync, sign, type KeyObject, type X509Certificate } from "node:crypto";

import { status, type ChannelCredentials, type ClientUnaryCall, type ServiceError } from "@grpc/grpc-js";

import {
  CancelledError,
  FailedPreconditionError,
  InvalidArgumentError,
  PermissionDeniedError,
  UnauthenticatedError,
  UnavailableError,
  errorMessage,
  throwIfAborted,
} from "../../common/errors.js";
import type { NodeCAClient } from "../../gen/shoal/v1/NodeCA.js";
import {
  certificateToPem,
  channelCredentials,
  nodeCertificateRoles,
  parsePemCertificates,
  tlsChannelOptions,
  unverifiedChannelCredentials,
  verifyNodeCertificate,
  type NodeIdentity,
  type TlsMaterial,
} from "../../rpc/tls/index.js";
import type { NodeAvailability } from "../objects/index.js";
import { parseJoinToken, verifyRootCaForToken } from "./join-token.js";
import { loadCaProto } from "./node-ca-service.js";
import { nodeCertificateProofMessage } from "./proof.js";

/** NodeCA answers are a few certificates; a larger one (from an unverified server) is refused unread. */
export const nodeCaResponseBytesMax = 64 * 1024;
/** How long one NodeCA call may take before the node gives up on that manager. */
export const nodeCaCallTimeoutMs = 10_000;

/** A node's TLS material after joining or renewing, and who the certificate says it is. */
export interface NodeCredentials extends TlsMaterial {
  identity: NodeIdentity;
}

function openClient(address: string, credentials: ChannelCredentials): NodeCAClient {
  const NodeCA = loadCaProto().shoal.v1.NodeCA;
  return new NodeCA(address, credentials, { ...tlsChannelOptions, "grpc.max_receive_message_length": nodeCaResponseBytesMax });
}

/** The manager's refusal as the matching error kind, so callers can tell a bad token from an outage. */
function errorFromStatus(error: ServiceError, what: string): Error {
  const message = `${what} failed: ${error.details || error.message}`;
  switch (error.code) {
    case status.INVALID_ARGUMENT:
      return new InvalidArgumentError(message, { cause: error });
    case status.PERMISSION_DENIED:
      return new PermissionDeniedError(message, { cause: error });
    case status.UNAUTHENTICATED:
      return new UnauthenticatedError(message, { cause: error });
    case status.FAILED_PRECONDITION:
      return new FailedPreconditionError(message, { cause: error });
    default:
      return new UnavailableError(message, { cause: error });
  }
}

/** Runs one unary call with a deadline, cancelling it when `signal` fires. */
function unary<T>(start: (deadline: Date, callback: (error: ServiceError | null, value?: T) => void) => ClientUnaryCall, what: string, signal: AbortSignal | undefined): Promise<T> {
  throwIfAborted(signal);
  return new Promise<T>((resolve, reject) => {
    const call = start(new Date(Date.now() + nodeCaCallTimeoutMs), (error, value) => {
      listener?.[Symbol.dispose]();
      if (error !== null) reject(errorFromStatus(error, what));
      else if (value === undefined) reject(new UnavailableError(`${what} returned nothing`));
      else resolve(value);
    });
    const listener = signal === undefined ? undefined : addAbortListener(signal, () => {
      call.cancel();
      reject(new CancelledError(`${what} cancelled`, { cause: signal.reason }));
    });
  });
}

function newKeyPair(): { privateKey: KeyObject; publicKeyDer: Buffer } {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  return { privateKey, publicKeyDer: publicKey.export({ type: "spki", format: "der" }) };
}

/**
 * Fetches the cluster's root CA certificate from `address` and checks it against the
 * digest pinned in `token`. Throws InvalidArgumentError for a malformed token,
 * FailedPreconditionError when the CA does not match it, UnavailableError when the
 * manager cannot be reached.
 */
export async function fetchTrustedRootCa(options: { address: string; token: string; signal?: AbortSignal }): Promise<string> {
  const token = parseJoinToken(options.token);
  const client = openClient(options.address, unverifiedChannelCredentials());
  try {
    const response = await unary<{ certificate: string }>(
      (deadline, callback) => client.GetRootCACertificate({}, { deadline }, callback),
      `fetching the root CA from ${options.address}`,
      options.signal,
    );
    const roots = parsePemCertificates(response.certificate, "the manager's root CA certificate");
    const [root] = roots;
    // Exactly one: the answer is not yet trusted, and an extra certificate appended by a
    // man in the middle would otherwise be trusted along with the pinned one.
    if (root === undefined || roots.length !== 1) {
      throw new FailedPreconditionError(`${options.address} sent ${roots.length} root CA certificates instead of one`);
    }
    verifyRootCaForToken(token, root.raw);
    return certificateToPem(root.raw);
  } finally {
    client.close();
  }
}

interface IssueOptions {
  address: string;
  caPem: string;
  token: string;
  /** Present for renewal: the connection shows the current certificate. */
  current?: TlsMaterial;
  addresses: readonly string[];
  /** Joining only: the availability the new node starts with (empty: active). */
  availability?: NodeAvailability;
  signal?: AbortSignal;
}

async function issue(options: IssueOptions): Promise<NodeCredentials> {
  const { privateKey, publicKeyDer } = newKeyPair();
  const proof = sign("sha256", nodeCertificateProofMessage(options.token, publicKeyDer), { key: privateKey, dsaEncoding: "der" });
  const credentials = channelCredentials({
    caPem: options.caPem,
    ...(options.current === undefined ? {} : { certPem: options.current.certPem, keyPem: options.current.keyPem }),
  });
  const client = openClient(options.address, credentials);
  try {
    const response = await unary<{ nodeId: string; role: string; clusterId: string; certificateChain: string }>(
      (deadline, callback) =>
        client.IssueNodeCertificate(
          { token: options.token, publicKey: publicKeyDer, proof, addresses: [...options.addresses], availability: options.availability ?? "" },
          { deadline },
          callback,
        ),
      `requesting a node certificate from ${options.address}`,
      options.signal,
    );
    return checkIssued({ response, caPem: options.caPem, privateKey });
  } finally {
    client.close();
  }
}

/** Checks that what the CA sent is a certificate for our key, chaining to the trusted root. */
function checkIssued(options: {
  response: { nodeId: string; role: string; clusterId: string; certificateChain: string };
  caPem: string;
  privateKey: KeyObject;
}): NodeCredentials {
  const { response, caPem, privateKey } = options;
  const [leaf] = parsePemCertificates(response.certificateChain, "the issued certificate chain");
  const roots = parsePemCertificates(caPem, "the root CA certificate");
  if (leaf === undefined) throw new UnavailableError("the manager sent an empty certificate chain");
  let identity: NodeIdentity;
  try {
    identity = verifyNodeCertificate(leaf, { roots: () => roots, now: () => Date.now() });
  } catch (error) {
    throw new UnavailableError(`the manager sent a certificate that does not verify: ${errorMessage(error)}`, { cause: error });
  }
  const roleMatches = nodeCertificateRoles.some((role) => role === response.role && role === identity.role);
  if (!leaf.checkPrivateKey(privateKey) || identity.nodeId !== response.nodeId || !roleMatches || identity.clusterId !== response.clusterId) {
    throw new UnavailableError("the manager sent a certificate for another key or node than it claims");
  }
  const keyPem = privateKey.export({ type: "pkcs8", format: "pem" }).toString();
  return { caPem, certPem: response.certificateChain, keyPem, identity };
}

/**
 * Joins a cluster: trusts the root CA only if it matches the token, makes a fresh P-256 key,
 * and has the manager at `address` certify it. The token secret travels only over a
 * connection whose server certificate chains to that CA. Errors as fetchTrustedRootCa,
 * plus UnavailableError carrying the manager's refusal (a wrong or rotated token).
 */
export async function joinWithToken(options: {
  address: string;
  token: string;
  addresses: readonly string[];
  availability?: NodeAvailability;
  signal?: AbortSignal;
}): Promise<NodeCredentials> {
  const caPem = await fetchTrustedRootCa(options);
  return issue({ ...options, caPem });
}

/** Renews a node's certificate with a new key, proving who it is with its current certificate. */
export async function renewNodeCertificate(options: { address: string; current: TlsMaterial; addresses: readonly string[]; signal?: AbortSignal }): Promise<NodeCredentials> {
  return issue({ ...options, caPem: options.current.caPem, token: "" });
}

/** The certificate of a node's TLS material (the first of its chain). */
export function leafCertificate(material: TlsMaterial): X509Certificate {
  const [leaf] = parsePemCertificates(material.certPem, "the node certificate chain");
  if (leaf === undefined) throw new UnavailableError("the node certificate chain is empty");
  return leaf;
}
