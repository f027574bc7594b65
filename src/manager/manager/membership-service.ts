import { Metadata, type ChannelCredentials, type ServiceError } from "@grpc/grpc-js";

import type { Clock } from "../../common/clock.js";
import { FailedPreconditionError, InvalidArgumentError, errorMessage } from "../../common/errors.js";
import type { Logger } from "../../common/logger.js";
import type { ProtoGrpcType as MembershipProto } from "../../gen/membership.js";
import type { ForwardRequest__Output } from "../../gen/shoal/v1/ForwardRequest.js";
import type { ForwardResponse } from "../../gen/shoal/v1/ForwardResponse.js";
import type { ControlForwardHandlers } from "../../gen/shoal/v1/ControlForward.js";
import type { RaftJoinResponse__Output } from "../../gen/shoal/v1/RaftJoinResponse.js";
import type { RaftMembershipHandlers } from "../../gen/shoal/v1/RaftMembership.js";
import { NotLeaderError } from "../../raft/index.js";
import { loadProto } from "../../rpc/proto.js";
import type { GrpcService } from "../../rpc/server.js";
import { grpcErrorOf, tlsChannelOptions, type AuthenticatedCall } from "../../rpc/tls/index.js";
import { leaderAddressMetadataKey } from "../dispatcher/index.js";
import { memberAddressLengthMax, parseManagerMembers, type ManagerMember } from "./member-directory.js";
import { callUnary } from "./unary.js";

/** Largest forwarded REST body, either way; the REST API's own limits are below it. */
export const forwardBodyBytesMax = 8 * 1024 * 1024;
const forwardMethods = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"] as const;
export type ForwardMethod = (typeof forwardMethods)[number];
const forwardPathLengthMax = 4_096;

let membershipProto: MembershipProto | undefined;

function loadMembershipProto(): MembershipProto {
  membershipProto ??= loadProto<MembershipProto>("shoal/v1/membership.proto");
  return membershipProto;
}

/** What the leader answers a joining manager. */
export interface JoinAnswer {
  raftId: number;
  members: ManagerMember[];
  clusterId: string;
  caKeyPem: string;
  caCertPem: string;
}

/** The manager's side of the membership RPCs; every method has the caller already authenticated as a manager. */
export interface MembershipHost {
  /** Throws (UnauthenticatedError, PermissionDeniedError) unless the caller holds a manager certificate of this cluster. */
  requireManager(call: AuthenticatedCall): { nodeId: string };
  join(request: { nodeId: string; address: string }): Promise<JoinAnswer>;
  leave(request: { nodeId: string }): Promise<void>;
  progress(): { raftId: number; applied: number };
  /** The leader's address while this manager follows, sent with "not the leader" refusals. */
  leaderAddress(): string | undefined;
}

/** A REST request replayed on the leader, and its answer. */
export interface ForwardedRequest {
  method: ForwardMethod;
  path: string;
  query: string;
  contentType: string;
  body: Buffer;
}

export interface ForwardedResponse {
  status: number;
  contentType: string;
  body: Buffer;
}

/** Runs a forwarded request locally (the daemon does it with fastify's inject). */
export type ForwardExecutor = (request: ForwardedRequest, options: { signal: AbortSignal }) => Promise<ForwardedResponse>;

function parseAddress(value: string): string {
  if (value.length === 0 || value.length > memberAddressLengthMax || !/^[^\s]+:\d{1,5}$/.test(value)) {
    throw new InvalidArgumentError(`address must be "host:port" of at most ${memberAddressLengthMax} characters, got "${value.slice(0, 64)}"`);
  }
  return value;
}

function parseForwardRequest(request: ForwardRequest__Output): ForwardedRequest {
  const method = forwardMethods.find((item) => item === request.method);
  if (method === undefined) throw new InvalidArgumentError(`method must be one of ${forwardMethods.join(", ")}`);
  if (!request.path.startsWith("/") || request.path.length > forwardPathLengthMax) {
    throw new InvalidArgumentError(`path must start with "/" and be at most ${forwardPathLengthMax} characters`);
  }
  if (request.query.length > forwardPathLengthMax) throw new InvalidArgumentError(`query must be at most ${forwardPathLengthMax} characters`);
  if (request.body.length > forwardBodyBytesMax) throw new InvalidArgumentError(`body must be at most ${forwardBodyBytesMax} bytes`);
  return { method, path: request.path, query: request.query, contentType: request.contentType, body: request.body };
}

/** The RaftMembership service: every call authenticated as a manager, then handed to `host`. */
export function createMembershipService(options: { host: MembershipHost; logger: Logger }): GrpcService {
  const { host } = options;
  const logger = options.logger.child({ component: "raft-membership" });
  const fail = (what: string, error: unknown): Partial<ServiceError> => {
    logger.info({ err: errorMessage(error) }, `${what} refused`);
    const answer = grpcErrorOf(error);
    const leader = error instanceof NotLeaderError ? host.leaderAddress() : undefined;
    if (leader === undefined) return answer;
    // The caller's credentials are for the caller only, so it retries at the leader itself.
    const metadata = new Metadata();
    metadata.set(leaderAddressMetadataKey, leader);
    return { ...answer, metadata };
  };
  const handlers: RaftMembershipHandlers = {
    Join(call, callback) {
      Promise.resolve()
        .then(() => {
          const { nodeId } = host.requireManager(call);
          return host.join({ nodeId, address: parseAddress(call.request.address) });
        })
        .then(
          (answer) => callback(null, { ...answer, members: answer.members.map((member) => ({ ...member })) }),
          (error: unknown) => callback(fail("raft join", error)),
        );
    },
    Leave(call, callback) {
      Promise.resolve()
        .then(() => host.leave(host.requireManager(call)))
        .then(
          () => callback(null, {}),
          (error: unknown) => callback(fail("raft leave", error)),
        );
    },
    Progress(call, callback) {
      try {
        host.requireManager(call);
        callback(null, host.progress());
      } catch (error) {
        callback(fail("raft progress", error));
      }
    },
  };
  return { definition: loadMembershipProto().shoal.v1.RaftMembership.service, handlers };
}

/**
 * The ControlForward service. `execute` is null until the daemon supplies one; calls then
 * fail UNAVAILABLE. `isLeader` guards against forwarding loops: only the leader replays.
 */
export function createForwardService(options: {
  requireManager: (call: AuthenticatedCall) => unknown;
  execute: () => ForwardExecutor | null;
  refuseUnlessLeader: () => void;
  logger: Logger;
}): GrpcService {
  const logger = options.logger.child({ component: "control-forward" });
  const handlers: ControlForwardHandlers = {
    Forward(call, callback) {
      const abort = new AbortController();
      call.on("cancelled", () => abort.abort(new Error("the forwarding manager cancelled the call")));
      Promise.resolve()
        .then(() => {
          options.requireManager(call);
          options.refuseUnlessLeader();
          const execute = options.execute();
          if (execute === null) throw new FailedPreconditionError("this manager cannot replay REST requests: the daemon has not set a forward executor");
          return execute(parseForwardRequest(call.request), { signal: abort.signal });
        })
        .then(
          (response) => {
            if (response.body.length > forwardBodyBytesMax) throw new InvalidArgumentError(`the answer exceeds forwardBodyBytesMax ${forwardBodyBytesMax}`);
            const answer: ForwardResponse = { status: response.status, contentType: response.contentType, body: response.body };
            callback(null, answer);
          },
        )
        .catch((error: unknown) => {
          logger.info({ err: errorMessage(error), path: call.request.path }, "forwarded request refused");
          callback(grpcErrorOf(error));
        });
    },
  };
  return { definition: loadMembershipProto().shoal.v1.ControlForward.service, handlers };
}

interface ClientOptions {
  address: string;
  credentials: ChannelCredentials;
  clock: Clock;
  signal?: AbortSignal | undefined;
}

function membershipClient(options: ClientOptions): InstanceType<MembershipProto["shoal"]["v1"]["RaftMembership"]> {
  return new (loadMembershipProto().shoal.v1.RaftMembership)(options.address, options.credentials, { ...tlsChannelOptions });
}

function parseJoinAnswer(response: RaftJoinResponse__Output): JoinAnswer {
  if (!Number.isSafeInteger(response.raftId) || response.raftId <= 0) throw new InvalidArgumentError("the leader answered no raft id");
  if (response.caKeyPem.length === 0 || response.caCertPem.length === 0) throw new InvalidArgumentError("the leader answered no CA material");
  return {
    raftId: response.raftId,
    members: parseManagerMembers(response.members, "members"),
    clusterId: response.clusterId,
    caKeyPem: response.caKeyPem,
    caCertPem: response.caCertPem,
  };
}

/** The leader a follower named when it refused a call, if it named one. */
function redirectOf(error: unknown): string | undefined {
  const cause = error instanceof Error ? error.cause : undefined;
  if (!(cause instanceof Error) || !("metadata" in cause) || !(cause.metadata instanceof Metadata)) return undefined;
  const [leader] = cause.metadata.get(leaderAddressMetadataKey);
  return typeof leader === "string" && leader.length > 0 ? leader : undefined;
}

/**
 * Asks the manager at `address` to add the caller, named by its certificate, to raft. A
 * follower refuses naming the leader; the request is then sent there, once.
 */
export async function requestRaftJoin(options: ClientOptions & { advertiseAddress: string }): Promise<JoinAnswer> {
  try {
    return await requestRaftJoinAt(options);
  } catch (error) {
    const leader = redirectOf(error);
    if (leader === undefined || leader === options.address) throw error;
    return requestRaftJoinAt({ ...options, address: leader });
  }
}

async function requestRaftJoinAt(options: ClientOptions & { advertiseAddress: string }): Promise<JoinAnswer> {
  const client = membershipClient(options);
  try {
    const response = await callUnary<RaftJoinResponse__Output>({
      start: (deadline, callback) => client.Join({ address: options.advertiseAddress }, { deadline }, callback),
      what: `joining raft through ${options.address}`,
      clock: options.clock,
      signal: options.signal,
    });
    return parseJoinAnswer(response);
  } finally {
    client.close();
  }
}

/** Asks the manager at `address` (the leader) to remove the caller from raft. */
export async function requestRaftLeave(options: ClientOptions): Promise<void> {
  const client = membershipClient(options);
  try {
    await callUnary({
      start: (deadline, callback) => client.Leave({}, { deadline }, callback),
      what: `leaving raft through ${options.address}`,
      clock: options.clock,
      signal: options.signal,
    });
  } finally {
    client.close();
  }
}

/** How far the manager at `address` has applied the log. */
export async function requestRaftProgress(options: ClientOptions & { timeoutMs: number }): Promise<{ raftId: number; applied: number }> {
  const client = membershipClient(options);
  try {
    return await callUnary<{ raftId: number; applied: number }>({
      start: (deadline, callback) => client.Progress({}, { deadline }, callback),
      what: `asking ${options.address} for its raft progress`,
      clock: options.clock,
      timeoutMs: options.timeoutMs,
      signal: options.signal,
    });
  } finally {
    client.close();
  }
}

/** Replays a REST request on the manager at `address` (the leader). */
export async function requestForward(options: ClientOptions & { request: ForwardedRequest }): Promise<ForwardedResponse> {
  const client = new (loadMembershipProto().shoal.v1.ControlForward)(options.address, options.credentials, { ...tlsChannelOptions });
  try {
    const response = await callUnary<{ status: number; contentType: string; body: Buffer }>({
      start: (deadline, callback) => client.Forward({ ...options.request }, { deadline }, callback),
      what: `forwarding ${options.request.method} ${options.request.path} to the leader at ${options.address}`,
      clock: options.clock,
      signal: options.signal,
    });
    if (!Number.isInteger(response.status) || response.status < 100 || response.status > 599) {
      throw new InvalidArgumentError(`the leader answered HTTP status ${response.status}`);
    }
    return { status: response.status, contentType: response.contentType, body: response.body };
  } finally {
    client.close();
  }
}
