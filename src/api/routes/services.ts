import { once } from "node:events";
import { PassThrough } from "node:stream";

import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";

import { InvalidArgumentError, NotImplementedError, errorMessage } from "../../common/errors.js";
import type { ClusterControl } from "../../manager/controlapi/index.js";
import {
  dockerService,
  encodeLogFrames,
  parseDockerFilters,
  parseSince,
  parseTail,
  readDockerServiceSpec,
  requireManager,
  serviceFilterKeys,
  serviceFiltersFrom,
  withDockerFieldNames,
  type LogFrameOptions,
  type LogSelector,
  type ServiceLogOptions,
  type ServiceLogSource,
} from "../docker-swarm/index.js";
import { queryBoolean, queryInteger, queryString } from "../query.js";
import type { RouteRegistrar } from "../server.js";

export interface SwarmRouteOptions {
  control: ClusterControl;
  /** Where service and task logs come from; without one the log routes answer 501. */
  logs?: ServiceLogSource;
}

/** The `{id}` route parameter. */
export function idParam(request: FastifyRequest): string {
  const params = request.params;
  const id = typeof params === "object" && params !== null && "id" in params ? params.id : undefined;
  if (typeof id !== "string" || id === "") throw new InvalidArgumentError("the object id or name in the path must not be empty");
  return decodeURIComponent(id);
}

/** The `version` query parameter an update must carry (the object's Version.Index when read). */
export function versionParam(request: FastifyRequest): number {
  const version = queryInteger(request, "version", { min: 0 });
  if (version === undefined) throw new InvalidArgumentError("version is required: send the Version.Index the object had when you read it");
  return version;
}

/** Runs `work`, turning shoal spec-parser errors into ones that name Docker's fields. */
export async function withDockerNames<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    throw withDockerFieldNames(error);
  }
}

/** An abort signal that fires when the client's connection closes, and the way to stop listening. */
function abortOnClose(request: FastifyRequest): { signal: AbortSignal; abort: (reason: Error) => void; dispose: () => void } {
  const controller = new AbortController();
  const socket = request.raw.socket;
  const onClose = (): void => controller.abort(new Error("client went away"));
  socket.once("close", onClose);
  return { signal: controller.signal, abort: (reason) => controller.abort(reason), dispose: () => socket.off("close", onClose) };
}

/**
 * Streams logs in Docker's multiplexed framing. Errors before the first line are plain
 * HTTP errors; after it the stream is cut, as docker does.
 */
export async function replyWithLogs(source: ServiceLogSource | undefined, selector: LogSelector, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  if (source === undefined) {
    throw new NotImplementedError("service and task logs are not available on this daemon: no log source is wired into this manager");
  }
  const stdout = queryBoolean(request, "stdout");
  const stderr = queryBoolean(request, "stderr");
  if (!stdout && !stderr) throw new InvalidArgumentError("Bad parameters: you must choose at least one stream (stdout=1 or stderr=1)");
  const tail = parseTail(queryString(request, "tail"));
  const sinceMs = parseSince(queryString(request, "since"));
  const frame = { timestamps: queryBoolean(request, "timestamps"), details: queryBoolean(request, "details") };
  const follow = queryBoolean(request, "follow");
  const connection = abortOnClose(request);
  const options: ServiceLogOptions = { follow, stdout, stderr, signal: connection.signal, ...(tail === undefined ? {} : { tail }), ...(sinceMs === undefined ? {} : { sinceMs }) };
  try {
    await streamLogs(source, selector, request, reply, { frame, signal: connection.signal, options });
  } finally {
    connection.abort(new Error("log stream finished"));
    connection.dispose();
  }
}

async function streamLogs(
  source: ServiceLogSource,
  selector: LogSelector,
  request: FastifyRequest,
  reply: FastifyReply,
  how: { frame: LogFrameOptions; signal: AbortSignal; options: ServiceLogOptions },
): Promise<void> {
  const iterator = source.logs(selector, how.options)[Symbol.asyncIterator]();
  try {
    const first = await iterator.next();
    const stream = new PassThrough();
    void reply.code(200).type("application/vnd.docker.multiplexed-stream").send(stream);
    try {
      for (let step = first; step.done !== true; step = await iterator.next()) {
        for (const chunk of encodeLogFrames(step.value, how.frame)) {
          if (!stream.write(chunk)) await once(stream, "drain", { signal: how.signal });
        }
      }
      stream.end();
    } catch (error) {
      request.log.warn({ err: error, selector }, `log stream ended early: ${errorMessage(error)}`);
      stream.destroy();
    }
  } finally {
    await iterator.return?.();
  }
}

/** `/services...`: list (filters, status), create, inspect, update (version, rollback), remove, logs. */
export function serviceRoutes(options: SwarmRouteOptions): RouteRegistrar {
  const { control } = options;
  return (app: FastifyInstance) => {
    app.get("/services", (request) => {
      const api = requireManager(control);
      const filters = serviceFiltersFrom(parseDockerFilters(queryString(request, "filters"), serviceFilterKeys));
      return api.listServices(filters, { status: queryBoolean(request, "status") }).map(({ service, status }) => dockerService(service, status));
    });
    app.post("/services/create", async (request, reply) => {
      const api = requireManager(control);
      const service = await withDockerNames(() => api.createService(readDockerServiceSpec(request.body)));
      return reply.code(201).send({ ID: service.id, Warnings: [] });
    });
    app.get("/services/:id", (request) => {
      const api = requireManager(control);
      return dockerService(api.getService(idParam(request)));
    });
    app.post("/services/:id/update", async (request) => {
      const api = requireManager(control);
      const version = versionParam(request);
      const rollback = queryString(request, "rollback");
      if (rollback !== undefined && rollback !== "" && rollback !== "previous") {
        throw new InvalidArgumentError(`rollback must be "previous" (or left out), not "${rollback}"`);
      }
      const id = idParam(request);
      await withDockerNames(() =>
        rollback === "previous"
          ? api.updateService(id, version, undefined, { rollback: "previous" })
          : api.updateService(id, version, readDockerServiceSpec(request.body)),
      );
      return { Warnings: [] };
    });
    app.delete("/services/:id", async (request, reply) => {
      await requireManager(control).removeService(idParam(request));
      return reply.code(200).send();
    });
    app.get("/services/:id/logs", async (request, reply) => {
      const service = requireManager(control).getService(idParam(request));
      await replyWithLogs(options.logs, { kind: "service", serviceId: service.id }, request, reply);
      return reply;
    });
  };
}
