import { PassThrough } from "node:stream";

import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";

import { InvalidArgumentError, NotFoundError } from "../../common/errors.js";
import type { ImageRecord, ImageService, PullProgress } from "../../engine/images/index.js";
import { parsePlatformOption } from "../../engine/images/index.js";
import { familiarReference, parseReference } from "../../engine/registry/index.js";
import { replyWithJsonStream, type JsonStreamMessage } from "../json-stream.js";
import { queryBoolean, queryString, queryStrings } from "../query.js";
import { abortOnDisconnect } from "../abort.js";
import type { RouteRegistrar } from "../server.js";

function familiar(name: string): string {
  return familiarReference(parseReference(name));
}

function shortId(digest: string): string {
  return digest.replace(/^sha256:/, "").slice(0, 12);
}

function repoDigests(image: ImageRecord): string[] {
  return [...new Set(image.names.map((name) => `${familiar(name).replace(/[:@].*$/, "")}@${image.digest}`))];
}

function createdSeconds(image: ImageRecord): number {
  const created = image.created === null ? image.stored : Date.parse(image.created);
  return Math.floor((Number.isNaN(created) ? image.stored : created) / 1000);
}

export function dockerImageSummary(image: ImageRecord): Record<string, unknown> {
  return {
    Id: image.id,
    ParentId: "",
    RepoTags: image.names.map(familiar),
    RepoDigests: repoDigests(image),
    Created: createdSeconds(image),
    Size: image.size,
    VirtualSize: image.size,
    SharedSize: -1,
    Labels: image.config.labels,
    Containers: -1,
  };
}

export function dockerImageInspect(image: ImageRecord): Record<string, unknown> {
  const config = image.config;
  const healthcheck =
    config.healthcheck === null
      ? undefined
      : { Test: config.healthcheck.test, Interval: config.healthcheck.intervalNs, Timeout: config.healthcheck.timeoutNs, StartPeriod: config.healthcheck.startPeriodNs, StartInterval: config.healthcheck.startIntervalNs, Retries: config.healthcheck.retries };
  return {
    Id: image.id,
    RepoTags: image.names.map(familiar),
    RepoDigests: repoDigests(image),
    Parent: "",
    Comment: "",
    Created: image.created ?? new Date(image.stored).toISOString(),
    DockerVersion: "",
    Author: "",
    Config: {
      Env: config.env,
      Cmd: config.cmd.length === 0 ? null : config.cmd,
      Entrypoint: config.entrypoint.length === 0 ? null : config.entrypoint,
      WorkingDir: config.workingDir,
      User: config.user,
      Labels: config.labels,
      ExposedPorts: Object.fromEntries(config.exposedPorts.map((port) => [port, {}])),
      Volumes: Object.fromEntries(config.volumes.map((volume) => [volume, {}])),
      ...(config.stopSignal === null ? {} : { StopSignal: config.stopSignal }),
      ...(healthcheck === undefined ? {} : { Healthcheck: healthcheck }),
    },
    Architecture: image.platform.architecture,
    Os: image.platform.os,
    Size: image.size,
    GraphDriver: { Name: "overlay", Data: null },
    RootFS: { Type: "layers", Layers: image.diffIds },
    Metadata: { LastTagTime: new Date(image.stored).toISOString() },
  };
}

/** Docker's pull messages for shoal's pull events. */
export function pullMessages(event: PullProgress, reference: string): JsonStreamMessage[] {
  switch (event.type) {
    case "resolved":
      return [{ status: `Pulling from ${familiar(event.reference).replace(/[:@].*$/, "")}`, id: parseReference(event.reference).tag ?? "latest" }];
    case "layer-exists":
      return [{ status: "Already exists", id: shortId(event.digest) }];
    case "layer-downloading":
      return [{ status: "Downloading", id: shortId(event.digest), progressDetail: { current: event.current, total: event.total } }];
    case "layer-downloaded":
      return [{ status: "Download complete", id: shortId(event.digest) }];
    case "layer-extracting":
      return [{ status: "Extracting", id: shortId(event.digest) }];
    case "layer-extracted":
      return [{ status: "Pull complete", id: shortId(event.digest) }];
    case "done":
      return [
        { status: `Digest: ${event.image.digest}` },
        { status: event.transferredBytes === 0 ? `Status: Image is up to date for ${reference}` : `Status: Downloaded newer image for ${reference}` },
      ];
  }
}

function fromImageReference(request: FastifyRequest): string {
  const fromImage = queryString(request, "fromImage");
  if (fromImage === undefined || fromImage === "") {
    throw new InvalidArgumentError("fromImage is required (importing from fromSrc is not supported)");
  }
  const tag = queryString(request, "tag");
  if (tag === undefined || tag === "") return fromImage;
  return tag.startsWith("sha256:") ? `${fromImage}@${tag}` : `${fromImage}:${tag}`;
}

async function pull(images: ImageService, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const reference = fromImageReference(request);
  const platformText = queryString(request, "platform");
  const platform = platformText === undefined || platformText === "" ? undefined : parsePlatformOption(platformText);
  const signal = abortOnDisconnect(request, reply);
  await replyWithJsonStream(reply, async (send) => {
    await images.pull(reference, {
      signal,
      ...(platform === undefined ? {} : { platform }),
      onProgress: (event) => {
        for (const message of pullMessages(event, reference)) send(message);
      },
    });
  });
}

async function push(images: ImageService, name: string, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const tag = queryString(request, "tag");
  const reference = tag === undefined || tag === "" ? name : `${name}:${tag}`;
  const parsed = parseReference(reference);
  images.inspect(reference);
  const signal = abortOnDisconnect(request, reply);
  await replyWithJsonStream(reply, async (send) => {
    send({ status: `The push refers to repository [${parsed.registry}/${parsed.repository}]` });
    const digest = await images.push(reference, {
      signal,
      onProgress: (event) => {
        if (event.type === "blob-pushed") send({ status: event.uploaded ? "Pushed" : "Layer already exists", id: shortId(event.digest) });
      },
    });
    send({ status: `${parsed.tag ?? "latest"}: digest: ${digest}` });
    send({ aux: { Tag: parsed.tag ?? "latest", Digest: digest } });
  });
}

function save(images: ImageService, names: readonly string[], request: FastifyRequest, reply: FastifyReply): void {
  if (names.length === 0) throw new InvalidArgumentError("name at least one image to save");
  for (const name of names) images.inspect(name);
  const stream = new PassThrough();
  const signal = abortOnDisconnect(request, reply);
  void reply.code(200).type("application/x-tar").send(stream);
  images
    .save(names, (chunk) => new Promise<void>((resolve) => (stream.write(chunk) ? resolve() : stream.once("drain", resolve))), { signal })
    .then(
      () => stream.end(),
      (error: unknown) => {
        request.log.error({ err: error, names }, "image save failed mid-stream");
        stream.destroy(error instanceof Error ? error : new Error(String(error)));
      },
    );
}


/** `/images/...`: pull, list, inspect, load, save, push, tag, remove. */
export function imageRoutes(images: ImageService): RouteRegistrar {
  return (app: FastifyInstance) => {
    app.addContentTypeParser(["application/x-tar", "application/octet-stream"], (_request, payload, done) => done(null, payload));
    app.post("/images/create", (request, reply) => pull(images, request, reply));
    app.get("/images/json", () => images.list().map(dockerImageSummary));
    app.get("/images/get", (request, reply) => save(images, queryStrings(request, "names"), request, reply));
    app.post("/images/load", async (request, reply) => {
      const body = request.body;
      if (!isByteStream(body)) throw new InvalidArgumentError("send the image archive as the request body with Content-Type application/x-tar");
      const loaded = await images.load(body, { signal: abortOnDisconnect(request, reply) });
      const quiet = queryBoolean(request, "quiet");
      await replyWithJsonStream(reply, (send) => {
        for (const image of loaded) {
          const names = image.names.map(familiar);
          if (!quiet) for (const line of names.length === 0 ? [`Loaded image ID: ${image.id}`] : names.map((name) => `Loaded image: ${name}`)) send({ stream: `${line}\n` });
        }
        return Promise.resolve();
      });
    });
    // Image names hold slashes (registry hosts, repositories), so the action is read off the
    // end of the path rather than matched by a route parameter.
    app.get("/images/*", (request, reply) => {
      const path = wildcard(request);
      if (path.endsWith("/json")) return dockerImageInspect(images.inspect(path.slice(0, -"/json".length)));
      if (path.endsWith("/get")) {
        save(images, [path.slice(0, -"/get".length)], request, reply);
        return reply;
      }
      throw new NotFoundError(`page not found: GET /images/${path}`);
    });
    app.post("/images/*", async (request, reply) => {
      const path = wildcard(request);
      if (path.endsWith("/push")) return push(images, path.slice(0, -"/push".length), request, reply);
      if (path.endsWith("/tag")) {
        const repo = queryString(request, "repo");
        if (repo === undefined || repo === "") throw new InvalidArgumentError("repo is required to tag an image");
        const tag = queryString(request, "tag");
        await images.tag(path.slice(0, -"/tag".length), tag === undefined || tag === "" ? repo : `${repo}:${tag}`);
        return reply.code(201).send();
      }
      throw new NotFoundError(`page not found: POST /images/${path}`);
    });
    app.delete("/images/*", async (request) => {
      const result = await images.remove(wildcard(request), { force: queryBoolean(request, "force") });
      return [...result.untagged.map((name) => ({ Untagged: familiar(name) })), ...result.deleted.map((digest) => ({ Deleted: digest }))];
    });
  };
}

function isByteStream(value: unknown): value is AsyncIterable<Uint8Array> {
  return typeof value === "object" && value !== null && Symbol.asyncIterator in value;
}

function wildcard(request: FastifyRequest): string {
  const params = request.params;
  const value = typeof params === "object" && params !== null && "*" in params ? params["*"] : undefined;
  if (typeof value !== "string" || value === "") throw new NotFoundError(`page not found: ${request.method} ${request.url}`);
  return decodeURIComponent(value);
}
