import { chmod, rm } from "node:fs/promises";
import { STATUS_CODES, createServer, type IncomingMessage, type Server } from "node:http";
import type { Duplex } from "node:stream";

import { LogController, fastify, type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";

import { dockerApiVersion, dockerMinApiVersion } from "../common/version.js";
import { errorMessage, isShoalError } from "../common/errors.js";
import type { Logger } from "../common/logger.js";

/** Adds a group of routes (system, containers, images, ...) to the API. */
export type RouteRegistrar = (app: FastifyInstance) => void;

/**
 * A route that takes over the connection (`Connection: Upgrade`), as the Docker CLI asks
 * for exec and attach streams. Node hands such requests to the server's "upgrade" event,
 * past fastify, so they are matched here.
 */
export interface UpgradeRoute {
  readonly method: string;
  /** Matched against the path without its /vX.Y prefix and query; groups become params. */
  readonly path: RegExp;
  /**
   * Answers on the raw socket: write the 101 response, stream, then end the socket. A
   * throw before anything is written becomes a JSON error response.
   */
  handle(request: UpgradeRequest, socket: Duplex): Promise<void>;
}

export interface UpgradeRequest {
  readonly params: readonly string[];
  readonly query: URLSearchParams;
  readonly body: unknown;
  /** Fires when the client goes away. */
  readonly signal: AbortSignal;
}

/** How long requests in flight may run on after close() before their connections are cut. */
export const apiShutdownGraceMs = 2_000;

/** Largest JSON body an upgrade request may carry. */
export const upgradeBodyBytesMax = 1024 * 1024;

export interface ApiServerOptions {
  logger: Logger;
  registrars: readonly RouteRegistrar[];
  upgrades?: readonly UpgradeRoute[];
}

/** Where the API listens: a unix socket path, or a TCP host and port (port 0 = any free). */
export type ApiListener = { kind: "unix"; path: string } | { kind: "tcp"; host: string; port: number };

export interface ApiServer {
  /** The fastify instance, for in-process requests (`inject`) in tests. */
  readonly app: FastifyInstance;
  /** Starts serving on a listener; resolves with the bound address ("host:port" or the path). */
  listen(listener: ApiListener): Promise<string>;
  /** Stops accepting, ends idle connections, and waits for requests in flight. */
  close(): Promise<void>;
}

// Docker clients prefix every path with /vMAJOR.MINOR once they have negotiated a version.
const versionPrefix = /^\/v(\d+)\.(\d+)(?=\/)/;
const jsonContentType = "application/json";

function compareVersions(a: string, b: string): number {
  const [aMajor = 0, aMinor = 0] = a.split(".").map(Number);
  const [bMajor = 0, bMinor = 0] = b.split(".").map(Number);
  return aMajor === bMajor ? aMinor - bMinor : aMajor - bMajor;
}

/** The path without its /vX.Y prefix. */
export function stripVersionPrefix(url: string): string {
  return url.replace(versionPrefix, "");
}

/** The API version a request asked for in its path, or undefined when it has no prefix. */
export function requestedApiVersion(url: string): string | undefined {
  const match = versionPrefix.exec(url);
  return match === null ? undefined : `${match[1]}.${match[2]}`;
}

function checkApiVersion(request: FastifyRequest, reply: FastifyReply, done: () => void): void {
  const version = requestedApiVersion(request.originalUrl);
  if (version !== undefined && compareVersions(version, dockerApiVersion) > 0) {
    void reply.code(400).send({
      message: `client version ${version} is too new. Maximum supported API version is ${dockerApiVersion}`,
    });
    return;
  }
  if (version !== undefined && compareVersions(version, dockerMinApiVersion) < 0) {
    void reply.code(400).send({
      message: `client version ${version} is too old. Minimum supported API version is ${dockerMinApiVersion}, please upgrade your client to a newer version`,
    });
    return;
  }
  done();
}

function handleError(logger: Logger) {
  return (error: FastifyError | Error, request: FastifyRequest, reply: FastifyReply): void => {
    if (isShoalError(error)) {
      void reply.code(error.httpStatus).send({ message: error.message });
      return;
    }
    if ("validation" in error && error.validation !== undefined) {
      void reply.code(400).send({ message: error.message });
      return;
    }
    const statusCode = "statusCode" in error ? error.statusCode : undefined;
    if (typeof statusCode === "number" && statusCode >= 400 && statusCode < 500) {
      void reply.code(statusCode).send({ message: error.message });
      return;
    }
    logger.error({ err: error, method: request.method, url: request.url }, "request failed");
    void reply.code(500).send({ message: `internal error: ${errorMessage(error)}` });
  };
}

function buildApp(options: ApiServerOptions): FastifyInstance {
  const logger = options.logger;
  const baseLogger: FastifyBaseLogger = logger;
  const app = fastify({
    loggerInstance: baseLogger,
    // Requests are logged once, at debug level, by the onResponse hook below.
    logController: new LogController({ disableRequestLogging: true }),
    rewriteUrl: (request) => stripVersionPrefix(request.url ?? "/"),
    // Image layers and archives stream through the API: no body-size cap here; routes
    // that take JSON bodies rely on the JSON parser's own limit below.
    bodyLimit: 16 * 1024 * 1024,
  });
  // Docker clients send `Content-Type: application/json` with an empty body on many POSTs.
  app.addContentTypeParser(jsonContentType, { parseAs: "string" }, (_request, body, done) => {
    const text = typeof body === "string" ? body : body.toString("utf8");
    if (text.trim() === "") {
      done(null, undefined);
      return;
    }
    try {
      done(null, JSON.parse(text));
    } catch (error) {
      done(Object.assign(new Error(`invalid JSON body: ${errorMessage(error)}`), { statusCode: 400 }), undefined);
    }
  });
  app.addHook("onRequest", checkApiVersion);
  // The docker CLI compares the Content-Type header with "application/json" as a string.
  app.addHook("onSend", (_request, reply, payload, done) => {
    const type = reply.getHeader("content-type");
    if (typeof type === "string" && type.startsWith(`${jsonContentType};`)) {
      reply.header("content-type", jsonContentType);
    }
    done(null, payload);
  });
  app.addHook("onResponse", (request, reply, done) => {
    logger.debug(
      { method: request.method, url: request.originalUrl, status: reply.statusCode, ms: reply.elapsedTime },
      "request",
    );
    done();
  });
  app.setNotFoundHandler((request, reply) => {
    void reply.code(404).send({ message: `page not found: ${request.method} ${request.url}` });
  });
  app.setErrorHandler(handleError(logger));
  for (const register of options.registrars) register(app);
  return app;
}

function readUpgradeBody(request: IncomingMessage, socket: Duplex, head: Buffer): Promise<unknown> {
  const length = Number(request.headers["content-length"] ?? 0);
  if (!Number.isInteger(length) || length < 0 || length > upgradeBodyBytesMax) {
    return Promise.reject(Object.assign(new Error(`request body must be at most ${upgradeBodyBytesMax} bytes`), { statusCode: 400 }));
  }
  return new Promise((resolve, reject) => {
    let received = head;
    const finish = (): void => {
      socket.off("data", onData);
      socket.off("error", reject);
      if (received.length > length) socket.unshift(received.subarray(length));
      const text = received.subarray(0, length).toString("utf8").trim();
      try {
        resolve(text === "" ? undefined : JSON.parse(text));
      } catch {
        reject(Object.assign(new Error("invalid JSON body"), { statusCode: 400 }));
      }
    };
    const onData = (chunk: Buffer): void => {
      received = Buffer.concat([received, chunk]);
      if (received.length >= length) finish();
    };
    if (received.length >= length) {
      finish();
      return;
    }
    socket.on("data", onData);
    socket.once("error", reject);
  });
}

function writeUpgradeError(socket: Duplex, status: number, message: string): void {
  const body = JSON.stringify({ message });
  socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? "Error"}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}

function matchUpgradeRoute(routes: readonly UpgradeRoute[], method: string, path: string): { route: UpgradeRoute; params: string[] } | undefined {
  for (const route of routes) {
    const match = route.method === method ? route.path.exec(path) : null;
    if (match !== null) return { route, params: match.slice(1).map((part) => decodeURIComponent(part ?? "")) };
  }
  return undefined;
}

function handleUpgrade(options: ApiServerOptions) {
  const logger = options.logger;
  return (request: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const url = new URL(request.url ?? "/", "http://shoal");
    const path = stripVersionPrefix(url.pathname);
    const found = matchUpgradeRoute(options.upgrades ?? [], request.method ?? "", path);
    if (found === undefined) {
      writeUpgradeError(socket, 404, `page not found: ${request.method ?? ""} ${path}`);
      return;
    }
    const { route, params } = found;
    const controller = new AbortController();
    socket.once("close", () => controller.abort(new Error("client went away")));
    readUpgradeBody(request, socket, head)
      .then((body) => route.handle({ params, query: url.searchParams, body, signal: controller.signal }, socket))
      .catch((error: unknown) => {
        if (socket.writableEnded || socket.destroyed) return;
        if (isShoalError(error)) {
          writeUpgradeError(socket, error.httpStatus, error.message);
          return;
        }
        const statusCode = error instanceof Error && "statusCode" in error && typeof error.statusCode === "number" ? error.statusCode : 500;
        if (statusCode === 500) logger.error({ err: error, url: request.url }, "upgrade request failed");
        writeUpgradeError(socket, statusCode, errorMessage(error));
      });
  };
}

function listenOn(server: Server, listener: ApiListener): Promise<string> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    const onListening = (): void => {
      server.off("error", reject);
      const address = server.address();
      if (address === null) reject(new Error("the API server is not listening"));
      else if (typeof address === "string") resolve(address);
      else resolve(`${address.address}:${address.port}`);
    };
    if (listener.kind === "unix") server.listen(listener.path, onListening);
    else server.listen(listener.port, listener.host, onListening);
  });
}

/**
 * The REST API, shaped like the Docker Engine API. One fastify instance serves every
 * listener (the unix socket and the optional TCP address) through `app.routing`.
 */
export async function createApiServer(options: ApiServerOptions): Promise<ApiServer> {
  const app = buildApp(options);
  await app.ready();
  const servers: Server[] = [];
  const socketPaths: string[] = [];
  return {
    app,
    async listen(listener) {
      if (listener.kind === "unix") {
        // The caller holds the data-dir lock, so a socket file left here is a dead daemon's.
        await rm(listener.path, { force: true });
      }
      const server = createServer((request, response) => app.routing(request, response));
      server.keepAliveTimeout = 60_000;
      server.on("upgrade", handleUpgrade(options));
      const address = await listenOn(server, listener);
      servers.push(server);
      if (listener.kind === "unix") {
        socketPaths.push(listener.path);
        await chmod(listener.path, 0o660);
      }
      return address;
    },
    async close() {
      await Promise.all(
        servers.map(
          (server) =>
            new Promise<void>((resolve) => {
              // Long polls (wait, followed logs, exec streams) would hold close() forever:
              // they get a grace period, then their connections are cut.
              const cut = setTimeout(() => server.closeAllConnections(), apiShutdownGraceMs);
              server.close(() => {
                clearTimeout(cut);
                resolve();
              });
              server.closeIdleConnections();
            }),
        ),
      );
      await Promise.all(socketPaths.map((path) => rm(path, { force: true })));
      await app.close();
    },
  };
}
