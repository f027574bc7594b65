import { PassThrough, type Readable } from "node:stream";

import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";

import { systemClock, type Clock } from "../../common/clock.js";
import { ConflictError, InvalidArgumentError, NotFoundError, NotImplementedError, errorMessage } from "../../common/errors.js";
import type { Logger } from "../../common/logger.js";
import type { ContainerService } from "../../engine/runtime/containers.js";
import type { ExecSession } from "../../engine/runtime/exec.js";
import type { ContainerInfo } from "../../engine/runtime/types.js";
import { dockerContainerInspect, dockerContainerSummary, dockerState, parseCreateBody } from "../docker-container.js";
import type { ExecRegistry } from "../exec-registry.js";
import { multiplexFrame, multiplexedContentType } from "../multiplex.js";
import { queryBoolean, queryInteger, queryString } from "../query.js";
import { abortOnDisconnect } from "../abort.js";
import type { RouteRegistrar, UpgradeRoute } from "../server.js";

export interface ContainerRoutesOptions {
  containers: ContainerService;
  execs: ExecRegistry;
  logger: Logger;
  clock?: Clock;
}

type IdParams = { Params: { id: string } };

const waitConditions = new Set(["not-running", "next-exit", "removed"]);

/** Polling period while waiting for a state the engine has no event for (next-exit, removed). */
const statePollMs = 25;


function parseListFilters(request: FastifyRequest): (info: ContainerInfo) => boolean {
  const text = queryString(request, "filters");
  if (text === undefined || text === "") return () => true;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new InvalidArgumentError(`filters is not JSON: ${text}`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new InvalidArgumentError("filters must be a JSON object");
  const checks: Array<(info: ContainerInfo) => boolean> = [];
  const entries: Array<[string, unknown]> = Object.entries(parsed);
  for (const [key, raw] of entries) {
    // Docker accepts both {"label":["a=b"]} and {"label":{"a=b":true}}.
    const values = Array.isArray(raw) ? raw.map(String) : typeof raw === "object" && raw !== null ? Object.keys(raw) : [];
    const any = (match: (value: string) => boolean) => (): boolean => values.some(match);
    switch (key) {
      case "label":
        checks.push((info) => any((value) => { const at = value.indexOf("="); return at < 0 ? value in info.record.labels : info.record.labels[value.slice(0, at)] === value.slice(at + 1); })());
        break;
      case "name":
        checks.push((info) => any((value) => info.record.name.includes(value.replace(/^\//, "")))());
        break;
      case "id":
        checks.push((info) => any((value) => info.record.id.startsWith(value))());
        break;
      case "status":
        checks.push((info) => any((value) => value === dockerState(info))());
        break;
      default:
        throw new InvalidArgumentError(`unsupported filter "${key}": use label, name, id or status`);
    }
  }
  return (info) => checks.every((check) => check(info));
}

async function waitForCondition(options: ContainerRoutesOptions, id: string, condition: string, signal: AbortSignal): Promise<Record<string, unknown>> {
  const clock = options.clock ?? systemClock;
  const { containers } = options;
  if (condition !== "not-running") {
    // Docker clients register next-exit before they start the container.
    while (containers.inspect(id).state.status === "created") await clock.sleep(statePollMs, { signal });
  }
  const status = await containers.wait(id, { signal });
  if (condition === "removed") {
    for (;;) {
      try {
        containers.inspect(id);
      } catch (error) {
        if (error instanceof NotFoundError) break;
        throw error;
      }
      await clock.sleep(statePollMs, { signal });
    }
  }
  return { StatusCode: status.exitCode, Error: null };
}

function streamLogs(options: ContainerRoutesOptions, request: FastifyRequest<IdParams>, reply: FastifyReply): FastifyReply {
  const { containers } = options;
  const id = containers.inspect(request.params.id).record.id;
  const stdout = queryBoolean(request, "stdout");
  const stderr = queryBoolean(request, "stderr");
  if (!stdout && !stderr) throw new InvalidArgumentError("you must choose at least one stream: stdout=1 and/or stderr=1");
  const tailText = queryString(request, "tail");
  const tail = tailText === undefined || tailText === "" || tailText === "all" ? undefined : queryInteger(request, "tail", { min: 0 });
  const since = parseUnixTime(queryString(request, "since"), "since");
  const until = parseUnixTime(queryString(request, "until"), "until");
  const timestamps = queryBoolean(request, "timestamps");
  const signal = abortOnDisconnect(request, reply);
  const entries = containers.logs(id, {
    stdout,
    stderr,
    follow: queryBoolean(request, "follow"),
    signal,
    ...(tail === undefined ? {} : { tail }),
    ...(since === undefined ? {} : { sinceMs: since }),
    ...(until === undefined ? {} : { untilMs: until }),
  });
  const body = new PassThrough();
  void (async () => {
    try {
      for await (const entry of entries) {
        const text = timestamps ? `${entry.time} ${entry.text}` : entry.text;
        if (!body.write(multiplexFrame(entry.stream === "stderr" ? 2 : 1, Buffer.from(text)))) {
          await new Promise((resolve) => body.once("drain", resolve));
        }
      }
      body.end();
    } catch (error) {
      if (!signal.aborted) options.logger.warn({ err: error, container: id }, "log stream failed");
      body.destroy(error instanceof Error ? error : new Error(errorMessage(error)));
    }
  })();
  return reply.code(200).type(multiplexedContentType).send(body);
}

/** Docker's `since`/`until`: Unix seconds, with an optional fraction. */
function parseUnixTime(text: string | undefined, what: string): number | undefined {
  if (text === undefined || text === "" || text === "0") return undefined;
  if (!/^\d+(\.\d+)?$/.test(text)) throw new InvalidArgumentError(`${what} must be a Unix time in seconds, not "${text}"`);
  return Math.floor(Number(text) * 1000);
}

function registerLifecycle(app: FastifyInstance, options: ContainerRoutesOptions): void {
  const { containers } = options;
  app.post<IdParams>("/containers/:id/start", async (request, reply) => {
    if (containers.inspect(request.params.id).state.status === "running") return reply.code(304).send();
    await containers.start(request.params.id, { signal: abortOnDisconnect(request, reply) });
    return reply.code(204).send();
  });
  app.post<IdParams>("/containers/:id/stop", async (request, reply) => {
    if (containers.inspect(request.params.id).state.status !== "running") return reply.code(304).send();
    const timeoutSeconds = queryInteger(request, "t", { min: -1 });
    await containers.stop(request.params.id, timeoutSeconds === undefined || timeoutSeconds < 0 ? {} : { timeoutSeconds });
    return reply.code(204).send();
  });
  app.post<IdParams>("/containers/:id/restart", async (request, reply) => {
    const timeoutSeconds = queryInteger(request, "t", { min: -1 });
    await containers.restart(request.params.id, timeoutSeconds === undefined || timeoutSeconds < 0 ? {} : { timeoutSeconds });
    return reply.code(204).send();
  });
  app.post<IdParams>("/containers/:id/kill", async (request, reply) => {
    const killSignal = queryString(request, "signal");
    if (containers.inspect(request.params.id).state.status !== "running") throw new ConflictError(`container ${request.params.id} is not running`);
    await containers.kill(request.params.id, killSignal === undefined || killSignal === "" ? {} : { killSignal });
    return reply.code(204).send();
  });
  app.post<IdParams>("/containers/:id/wait", (request, reply) => {
    const id = containers.inspect(request.params.id).record.id;
    const condition = queryString(request, "condition") ?? "not-running";
    if (!waitConditions.has(condition)) throw new InvalidArgumentError(`invalid condition "${condition}": use not-running, next-exit or removed`);
    // Like dockerd, answer the headers at once and the body when the condition is met: the
    // docker CLI waits for those headers before it starts the container.
    const body = new PassThrough();
    void reply.code(200).type("application/json").send(body);
    reply.raw.flushHeaders();
    waitForCondition(options, id, condition, abortOnDisconnect(request, reply)).then(
      (result) => body.end(JSON.stringify(result)),
      (error: unknown) => body.end(JSON.stringify({ StatusCode: -1, Error: { Message: errorMessage(error) } })),
    );
    return reply;
  });
  app.delete<IdParams>("/containers/:id", async (request, reply) => {
    await containers.remove(request.params.id, { force: queryBoolean(request, "force") });
    return reply.code(204).send();
  });
}

/** Removes an AutoRemove container once its first run ends, as dockerd does for `run --rm`. */
function removeWhenDone(options: ContainerRoutesOptions, id: string): void {
  options.containers
    .wait(id)
    .then(() => options.containers.remove(id, { force: true }))
    .catch((error: unknown) => {
      if (!(error instanceof NotFoundError)) options.logger.warn({ err: error, container: id }, "auto-remove failed");
    });
}

function registerExec(app: FastifyInstance, options: ContainerRoutesOptions): void {
  const { containers, execs } = options;
  app.post<IdParams>("/containers/:id/exec", (request, reply) => {
    const info = containers.inspect(request.params.id);
    if (info.state.status !== "running") throw new ConflictError(`container ${info.record.id} is not running`);
    const body = request.body;
    const record: Record<string, unknown> = typeof body === "object" && body !== null ? { ...body } : {};
    const cmd = record.Cmd;
    if (!Array.isArray(cmd) || cmd.length === 0 || !cmd.every((part): part is string => typeof part === "string")) throw new InvalidArgumentError("Cmd must be a non-empty array of strings");
    if (record.Tty === true) throw new InvalidArgumentError("Tty is not supported by shoal yet: run exec without -t");
    const text = (key: string): string | undefined => {
      const value = record[key];
      return typeof value === "string" && value !== "" ? value : undefined;
    };
    const env = Array.isArray(record.Env) ? record.Env.map(String) : undefined;
    const user = text("User");
    const workingDir = text("WorkingDir");
    const instance = execs.create(info.record.id, { cmd, ...(env === undefined ? {} : { env }), ...(user === undefined ? {} : { user }), ...(workingDir === undefined ? {} : { workingDir }) });
    return reply.code(201).send({ Id: instance.id });
  });
  app.get<IdParams>("/exec/:id/json", (request) => {
    const instance = execs.get(request.params.id);
    return {
      ID: instance.id,
      Running: instance.running,
      ExitCode: instance.exitCode,
      ContainerID: instance.containerId,
      ProcessConfig: { entrypoint: instance.options.cmd[0] ?? "", arguments: instance.options.cmd.slice(1), tty: false, user: instance.options.user ?? "" },
      OpenStdin: false,
      OpenStdout: true,
      OpenStderr: true,
      Pid: 0,
    };
  });
  app.post<IdParams>("/exec/:id/start", async (request, reply) => {
    const instance = execs.get(request.params.id);
    if (instance.started) throw new ConflictError(`exec ${instance.id} has already been started`);
    const detach = typeof request.body === "object" && request.body !== null && "Detach" in request.body && request.body.Detach === true;
    const session = await execs.start(instance, detach ? new AbortController().signal : abortOnDisconnect(request, reply));
    if (detach) return reply.code(200).send();
    return reply.code(200).type(multiplexedContentType).send(multiplexSession(session));
  });
}

/**
 * Interleaves an exec's stdout and stderr into one multiplexed stream that ends once both
 * have ended and the process's exit code is recorded, so a client that inspects the exec
 * right after the stream ends always sees its exit code.
 */
export function multiplexSession(session: ExecSession): PassThrough {
  const body = new PassThrough();
  const pump = (source: Readable, stream: 1 | 2): Promise<void> =>
    new Promise((resolve, reject) => {
      source.on("data", (chunk: Buffer) => body.write(multiplexFrame(stream, chunk)));
      source.once("end", resolve);
      source.once("error", reject);
    });
  Promise.all([pump(session.stdout, 1), pump(session.stderr, 2), session.exited]).then(
    () => body.end(),
    (error: unknown) => body.destroy(error instanceof Error ? error : new Error(errorMessage(error))),
  );
  return body;
}

/** `/containers/...` and `/exec/...`. */
export function containerRoutes(options: ContainerRoutesOptions): RouteRegistrar {
  const { containers } = options;
  const clock = options.clock ?? systemClock;
  return (app: FastifyInstance) => {
    app.post("/containers/create", async (request, reply) => {
      const { request: create, autoRemove } = parseCreateBody(request.body, queryString(request, "name"));
      const created = await containers.create(create, { signal: abortOnDisconnect(request, reply) });
      if (autoRemove) removeWhenDone(options, created.id);
      return reply.code(201).send({ Id: created.id, Warnings: [] });
    });
    app.get("/containers/json", (request) => {
      const matches = parseListFilters(request);
      const limit = queryInteger(request, "limit", { min: -1 });
      const all = queryBoolean(request, "all") || (limit !== undefined && limit > 0);
      const list = containers.list({ all }).filter(matches).sort((a, b) => b.record.createdAt.localeCompare(a.record.createdAt));
      return (limit !== undefined && limit > 0 ? list.slice(0, limit) : list).map((info) => dockerContainerSummary(info, clock.now()));
    });
    app.get<IdParams>("/containers/:id/json", (request) => dockerContainerInspect(containers.inspect(request.params.id)));
    app.get<IdParams>("/containers/:id/logs", (request, reply) => streamLogs(options, request, reply));
    app.get<IdParams>("/containers/:id/stats", async (request, reply) => {
      const stats = await containers.stats(request.params.id, { signal: abortOnDisconnect(request, reply) });
      return {
        id: stats.id,
        read: stats.readAt,
        memory_stats: { usage: stats.memoryUsageBytes ?? 0, max_usage: stats.memoryMaxUsageBytes ?? 0, limit: stats.memoryLimitBytes ?? 0 },
        cpu_stats: { cpu_usage: { total_usage: stats.cpuUsageNanoseconds ?? 0 } },
        pids_stats: { current: stats.pidsCurrent ?? 0 },
      };
    });
    registerLifecycle(app, options);
    registerExec(app, options);
  };
}

/**
 * The hijacked forms the Docker CLI uses: `docker exec` starts its exec with
 * `Connection: Upgrade` and reads the multiplexed stream from the raw connection.
 */
export function containerUpgradeRoutes(options: { execs: ExecRegistry }): UpgradeRoute[] {
  return [
    {
      method: "POST",
      path: /^\/exec\/([^/]+)\/start$/,
      async handle(request, socket) {
        const instance = options.execs.get(request.params[0] ?? "");
        if (instance.started) throw new ConflictError(`exec ${instance.id} has already been started`);
        const session = await options.execs.start(instance, request.signal);
        socket.write(`HTTP/1.1 101 UPGRADED\r\nContent-Type: ${multiplexedContentType}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n`);
        const body = multiplexSession(session);
        body.pipe(socket);
        await new Promise<void>((resolve) => body.once("close", resolve));
      },
    },
    {
      method: "POST",
      path: /^\/containers\/([^/]+)\/attach$/,
      handle() {
        return Promise.reject(new NotImplementedError("attach is not supported by shoal yet: run detached (docker run -d) and follow the output with docker logs -f"));
      },
    },
  ];
}
