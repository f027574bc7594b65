import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";

import { InvalidArgumentError, UnavailableError } from "../common/errors.js";
import { stripVersionPrefix, type RouteRegistrar } from "../api/server.js";
import type { ForwardedRequest, ForwardedResponse, ForwardExecutor, ForwardMethod } from "../manager/manager/index.js";
import { forwardBodyBytesMax } from "../manager/manager/index.js";

/** Marks a request the leader replays, so that it is never forwarded a second time. */
export const forwardedHeader = "x-shoal-forwarded";

// Cluster state lives in raft: writes to it need the leader. Init, join and leave act on
// this node itself and stay local; reads are served from the local replica once it has
// caught up with the leader's commit index (SwarmNode.readBarrier).
const clusterPath = /^\/(swarm|services|nodes|tasks|networks)(\/|$|\?)/;
const localSwarmPath = /^\/swarm\/(init|join|leave)(\/|$|\?)/;
const writeMethods: ReadonlySet<string> = new Set(["POST", "PUT", "DELETE", "PATCH"]);

function forwardMethodOf(method: string): ForwardMethod {
  switch (method) {
    case "POST":
    case "PUT":
    case "DELETE":
    case "PATCH":
      return method;
    default:
      throw new InvalidArgumentError(`method ${method} is not forwarded`);
  }
}

/** Whether a request must run on the leader. */
export function needsLeader(method: string, url: string): boolean {
  if (!writeMethods.has(method)) return false;
  const path = stripVersionPrefix(url);
  return clusterPath.test(path) && !localSwarmPath.test(path);
}

/** Whether a request reads cluster state, which a follower serves only once caught up. */
export function readsClusterState(method: string, url: string): boolean {
  return (method === "GET" || method === "HEAD") && clusterPath.test(stripVersionPrefix(url));
}

function forwardedRequestOf(request: FastifyRequest): ForwardedRequest {
  const [path = "", query = ""] = request.url.split("?", 2);
  const contentType = typeof request.headers["content-type"] === "string" ? request.headers["content-type"] : "";
  // The body is parsed by the time preHandler runs; the routes only take JSON, so
  // serialising it again gives the leader an equivalent request.
  const body = request.body === undefined || request.body === null ? Buffer.alloc(0) : Buffer.from(JSON.stringify(request.body));
  if (body.length > forwardBodyBytesMax) throw new InvalidArgumentError(`request bodies forwarded to the leader are limited to ${forwardBodyBytesMax} bytes`);
  return { method: forwardMethodOf(request.method), path, query, contentType, body };
}

/** What the forwarding hook needs of this node's place in the swarm (SwarmNode in shoald). */
export interface LeaderRouting {
  forwardsWrites(): boolean;
  forwardToLeader(request: ForwardedRequest): Promise<ForwardedResponse>;
  readBarrier(): Promise<void>;
}

/**
 * A registrar adding a preHandler that sends cluster writes on a follower manager to the
 * leader (manager.forwardToLeader) and relays its answer, and holds a follower's cluster
 * reads until its replica has caught up. Register it before the routes.
 */
export function leaderForwarding(swarm: LeaderRouting): RouteRegistrar {
  return (app: FastifyInstance) => {
    app.addHook("preHandler", async (request: FastifyRequest, reply: FastifyReply) => {
      if (request.headers[forwardedHeader] !== undefined) return undefined;
      if (readsClusterState(request.method, request.url)) {
        await swarm.readBarrier();
        return undefined;
      }
      if (!needsLeader(request.method, request.url) || !swarm.forwardsWrites()) return undefined;
      const answer = await swarm.forwardToLeader(forwardedRequestOf(request));
      if (answer.contentType !== "") void reply.type(answer.contentType);
      return reply.code(answer.status).send(answer.body);
    });
  };
}

/** The executor a leader runs forwarded requests with: fastify inject on its own API. */
export function injectExecutor(app: () => FastifyInstance | undefined): ForwardExecutor {
  return async (request, { signal }) => {
    const instance = app();
    if (instance === undefined) throw new UnavailableError("the REST API is not started yet; try again");
    if (signal.aborted) throw new UnavailableError("the forwarded request was cancelled");
    const response = await instance.inject({
      method: request.method,
      url: request.query === "" ? request.path : `${request.path}?${request.query}`,
      headers: { [forwardedHeader]: "1", ...(request.contentType === "" ? {} : { "content-type": request.contentType }) },
      ...(request.body.length === 0 ? {} : { payload: request.body }),
    });
    const contentType = response.headers["content-type"];
    return { status: response.statusCode, contentType: typeof contentType === "string" ? contentType : "", body: response.rawPayload } satisfies ForwardedResponse;
  };
}
