import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { Readable } from "node:stream";

import { Agent, fetch } from "undici";

import type { Clock } from "../../common/clock.js";
import {
  CancelledError,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  ResourceExhaustedError,
  UnauthenticatedError,
  UnavailableError,
  errorMessage,
  throwIfAborted,
  systemErrorCode,
} from "../../common/errors.js";
import type { Logger } from "../../common/logger.js";
import { isDigest, parseDigest, type Descriptor, type Digest } from "../content/digest.js";
import { dockerHubApiHost, dockerHubRegistry, formatReference, type ImageReference } from "./reference.js";

/** Metadata requests (manifests, tokens, HEADs); blob bodies are not bounded by this. */
export const registryRequestTimeoutMs = 30_000;
/** A blob download with no data for this long is aborted. */
export const registryBlobIdleTimeoutMs = 60_000;
export const registryManifestBytesMax = 4 * 1024 * 1024;
export const registryTokenBytesMax = 64 * 1024;
/** Error bodies kept for messages. */
const errorBodyBytesMax = 2048;
/** Cached bearer tokens (per registry, repository and action set). */
export const registryTokensMax = 256;
const tokenLifetimeMsDefault = 60_000;
const tokenRefreshMarginMs = 10_000;

export const manifestAcceptTypes = [
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.v2+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
] as const;

export interface RegistryCredentials {
  readonly username: string;
  readonly password: string;
}

export interface RegistryClientOptions {
  readonly logger: Logger;
  readonly clock: Clock;
  /** Hosts ("host:port") reached over plain HTTP; loopback always is. */
  readonly insecureRegistries?: readonly string[];
  /** Credentials for a registry host, used for basic auth and for token requests. */
  readonly credentials?: (registry: string) => RegistryCredentials | undefined;
  /** Where to look for the system's CA bundle, first found wins (default systemCaBundlePaths). */
  readonly caBundlePaths?: readonly string[];
}

/**
 * Where distributions keep the system's CA bundle, which update-ca-certificates (and its
 * kin) extend with a site's own CAs: Debian and Ubuntu, Fedora and RHEL, Alpine and others.
 * HTTPS registries are checked against it, as Docker does, rather than against the Mozilla
 * set built into Node, which knows nothing of a site's CAs.
 */
export const systemCaBundlePaths: readonly string[] = ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem"];

export interface FetchedManifest {
  readonly bytes: Buffer;
  readonly mediaType: string;
  readonly digest: Digest;
}

export interface ManifestHead {
  readonly digest: Digest | undefined;
  readonly mediaType: string;
  readonly size: number;
}

type Actions = "pull" | "pull,push";

/**
 * An OCI distribution API client over global fetch. Each method takes the repository it
 * acts on, because bearer tokens are scoped per repository.
 */
export interface RegistryClient {
  /** NotFoundError when the manifest is unknown; the digest is verified before returning. */
  getManifest(ref: ImageReference, reference: string, options?: { signal?: AbortSignal }): Promise<FetchedManifest>;
  /** null when the registry does not have it. */
  headManifest(ref: ImageReference, reference: string, options?: { signal?: AbortSignal }): Promise<ManifestHead | null>;
  /** Streams a blob (following redirects). The caller verifies size and digest. */
  openBlob(ref: ImageReference, descriptor: Descriptor, options?: { signal?: AbortSignal }): Promise<AsyncIterable<Uint8Array>>;
  hasBlob(ref: ImageReference, digest: Digest, options?: { signal?: AbortSignal }): Promise<boolean>;
  /** Monolithic upload (POST then PUT ?digest=); skipped when the registry has the blob. */
  pushBlob(
    ref: ImageReference,
    descriptor: Descriptor,
    source: () => Promise<AsyncIterable<Uint8Array> | Iterable<Uint8Array>>,
    options?: { signal?: AbortSignal },
  ): Promise<{ uploaded: boolean }>;
  /** PUTs a manifest under a tag (or its digest); returns the digest the registry reports. */
  putManifest(ref: ImageReference, reference: string, manifest: { mediaType: string; bytes: Buffer }, options?: { signal?: AbortSignal }): Promise<Digest>;
}

interface Challenge {
  scheme: "bearer" | "basic";
  params: Map<string, string>;
}

/** Parses `Bearer realm="...",service="...",scope="..."` (and Basic). */
export function parseChallenge(header: string): Challenge | undefined {
  const match = /^\s*(Bearer|Basic)\b(.*)$/iu.exec(header);
  if (match === null) return undefined;
  const scheme = (match[1] ?? "").toLowerCase() === "bearer" ? "bearer" : "basic";
  const params = new Map<string, string>();
  for (const param of (match[2] ?? "").matchAll(/([A-Za-z_]+)=(?:"([^"]*)"|([^,\s]*))/gu)) {
    params.set((param[1] ?? "").toLowerCase(), param[2] ?? param[3] ?? "");
  }
  return { scheme, params };
}

function isLoopbackHost(host: string): boolean {
  const hostname = host.startsWith("[") ? host.slice(1, host.indexOf("]")) : (host.split(":")[0] ?? "");
  return hostname === "localhost" || hostname === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/u.test(hostname);
}

async function readLimited(body: ReadableStream<Uint8Array> | null, bytesMax: number, what: string): Promise<Buffer> {
  if (body === null) return Buffer.alloc(0);
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of body) {
    total += chunk.length;
    if (total > bytesMax) {
      await body.cancel().catch(() => undefined);
      throw new ResourceExhaustedError(`${what} is larger than ${bytesMax} bytes`);
    }
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks);
}

class RegistryClientImpl implements RegistryClient {
  readonly #logger: Logger;
  readonly #clock: Clock;
  readonly #insecure: Set<string>;
  readonly #credentials: (registry: string) => RegistryCredentials | undefined;
  readonly #tokens = new Map<string, { token: string; expires: number }>();
  /** Registries that asked for basic auth: send credentials up front next time. */
  readonly #basicRegistries = new Set<string>();
  readonly #caBundlePaths: readonly string[];
  #dispatcher: Promise<Agent> | undefined;

  constructor(options: RegistryClientOptions) {
    this.#logger = options.logger.child({ component: "registry" });
    this.#clock = options.clock;
    this.#insecure = new Set(options.insecureRegistries ?? []);
    this.#credentials = options.credentials ?? (() => undefined);
    this.#caBundlePaths = options.caBundlePaths ?? systemCaBundlePaths;
  }

  /** The connection pool for every request: TLS checked against the system's CA bundle. */
  #connections(): Promise<Agent> {
    this.#dispatcher ??= (async () => {
      for (const path of this.#caBundlePaths) {
        let text: string;
        try {
          text = await readFile(path, "utf8");
        } catch (error) {
          if (systemErrorCode(error) === "ENOENT") continue;
          throw new UnavailableError(`cannot read the CA bundle ${path}: ${errorMessage(error)}`, { cause: error });
        }
        if (!text.includes("-----BEGIN CERTIFICATE-----")) continue;
        this.#logger.debug({ path }, "HTTPS registries are checked against this CA bundle");
        return new Agent({ connect: { ca: text } });
      }
      this.#logger.warn({ paths: this.#caBundlePaths }, "no system CA bundle found; HTTPS registries are checked against Node's built-in CAs");
      return new Agent();
    })().catch((error: unknown) => {
      // The next request reads the bundle again.
      this.#dispatcher = undefined;
      throw error;
    });
    return this.#dispatcher;
  }

  #baseUrl(ref: ImageReference): string {
    const host = ref.registry === dockerHubRegistry ? dockerHubApiHost : ref.registry;
    const scheme = this.#insecure.has(ref.registry) || isLoopbackHost(host) ? "http" : "https";
    return `${scheme}://${host}/v2/${ref.repository}`;
  }

  #authorization(ref: ImageReference, actions: Actions): string | undefined {
    const cached = this.#tokens.get(`${ref.registry}|${ref.repository}|${actions}`);
    if (cached !== undefined && cached.expires > this.#clock.now()) return `Bearer ${cached.token}`;
    const credentials = this.#credentials(ref.registry);
    if (this.#basicRegistries.has(ref.registry) && credentials !== undefined) {
      return `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString("base64")}`;
    }
    return undefined;
  }

  /** A signal that fires on the caller's abort or after the metadata timeout. */
  #timeoutSignal(signal: AbortSignal | undefined): { signal: AbortSignal; done: () => void } {
    const controller = new AbortController();
    const cancelTimer = this.#clock.setTimer(registryRequestTimeoutMs, () => controller.abort(new UnavailableError(`registry request timed out after ${registryRequestTimeoutMs} ms`)));
    const onAbort = (): void => controller.abort(signal?.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    return {
      signal: controller.signal,
      done: () => {
        cancelTimer();
        signal?.removeEventListener("abort", onAbort);
      },
    };
  }

  async #fetch(url: string, init: RequestInit, signal: AbortSignal | undefined, ref: ImageReference): Promise<Response> {
    throwIfAborted(signal);
    try {
      const dispatcher = await this.#connections();
      return await fetch(url, { ...init, dispatcher, ...(signal === undefined ? {} : { signal }) });
    } catch (error) {
      if (signal?.aborted === true) {
        if (signal.reason instanceof UnavailableError) throw signal.reason;
        throw new CancelledError("registry request cancelled", { cause: signal.reason });
      }
      const cause = error instanceof Error && error.cause instanceof Error ? error.cause.message : errorMessage(error);
      throw new UnavailableError(`registry ${ref.registry} is unreachable (${url.split("/v2/")[0] ?? url}): ${cause}`, { cause: error });
    }
  }

  async #fetchToken(ref: ImageReference, actions: Actions, challenge: Challenge, signal: AbortSignal | undefined): Promise<void> {
    const realm = challenge.params.get("realm");
    if (realm === undefined || !/^https?:\/\//u.test(realm)) {
      throw new UnauthenticatedError(`registry ${ref.registry} sent a bearer challenge without a usable realm`);
    }
    const url = new URL(realm);
    const service = challenge.params.get("service");
    if (service !== undefined) url.searchParams.set("service", service);
    url.searchParams.set("scope", `repository:${ref.repository}:${actions}`);
    const credentials = this.#credentials(ref.registry);
    const headers: Record<string, string> = {};
    if (credentials !== undefined) headers["authorization"] = `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString("base64")}`;
    const response = await this.#fetch(url.toString(), { headers }, signal, ref);
    const body = await readLimited(response.body, registryTokenBytesMax, "token response");
    if (response.status === 401 || response.status === 403) {
      throw new UnauthenticatedError(`token server ${url.host} refused ${credentials === undefined ? "anonymous access" : `the credentials of ${credentials.username}`} to ${ref.repository} (${actions})`);
    }
    if (!response.ok) throw new UnavailableError(`token server ${url.host} answered ${response.status}`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString("utf8"));
    } catch (error) {
      throw new UnavailableError(`token server ${url.host} sent invalid JSON`, { cause: error });
    }
    const fields: Record<string, unknown> = typeof parsed === "object" && parsed !== null ? { ...parsed } : {};
    const token = typeof fields["token"] === "string" ? fields["token"] : fields["access_token"];
    if (typeof token !== "string" || token === "") throw new UnavailableError(`token server ${url.host} sent no token`);
    const lifetime = typeof fields["expires_in"] === "number" && fields["expires_in"] > 0 ? fields["expires_in"] * 1000 : tokenLifetimeMsDefault;
    if (this.#tokens.size >= registryTokensMax) this.#tokens.clear();
    this.#tokens.set(`${ref.registry}|${ref.repository}|${actions}`, {
      token,
      expires: this.#clock.now() + Math.max(lifetime - tokenRefreshMarginMs, 1000),
    });
  }

  /**
   * One request with the auth dance: try, and on 401 answer the challenge (fetch a bearer
   * token, or switch to basic auth) and try once more. Bodies must be replayable (Buffer or none).
   */
  async #request(ref: ImageReference, actions: Actions, pathOrUrl: string, init: RequestInit, signal: AbortSignal | undefined): Promise<Response> {
    const url = pathOrUrl.startsWith("http") ? pathOrUrl : `${this.#baseUrl(ref)}${pathOrUrl}`;
    const attempt = (): Promise<Response> => {
      const headers = new Headers(init.headers);
      const authorization = this.#authorization(ref, actions);
      if (authorization !== undefined) headers.set("authorization", authorization);
      return this.#fetch(url, { ...init, headers }, signal, ref);
    };
    const first = await attempt();
    if (first.status !== 401) return first;
    await first.body?.cancel();
    const challenge = parseChallenge(first.headers.get("www-authenticate") ?? "");
    if (challenge === undefined) throw new UnauthenticatedError(`registry ${ref.registry} requires authentication but sent no usable challenge`);
    if (challenge.scheme === "bearer") {
      await this.#fetchToken(ref, actions, challenge, signal);
    } else {
      if (this.#credentials(ref.registry) === undefined) throw new UnauthenticatedError(`registry ${ref.registry} requires a username and password (basic auth)`);
      this.#basicRegistries.add(ref.registry);
    }
    const second = await attempt();
    if (second.status === 401) {
      await second.body?.cancel();
      throw new UnauthenticatedError(`registry ${ref.registry} refused the credentials for ${ref.repository}`);
    }
    return second;
  }

  async #failure(response: Response, what: string, ref: ImageReference): Promise<never> {
    const body = await readLimited(response.body, errorBodyBytesMax * 64, "error response").catch(() => Buffer.alloc(0));
    const detail = body.toString("utf8").slice(0, errorBodyBytesMax).trim();
    const message = `${what} on ${ref.registry}/${ref.repository}: HTTP ${response.status}${detail === "" ? "" : ` ${detail}`}`;
    if (response.status === 404) throw new NotFoundError(message);
    if (response.status === 403) throw new PermissionDeniedError(message);
    if (response.status === 400 || response.status === 405) throw new InvalidArgumentError(message);
    throw new UnavailableError(message);
  }

  async getManifest(ref: ImageReference, reference: string, options: { signal?: AbortSignal } = {}): Promise<FetchedManifest> {
    const timeout = this.#timeoutSignal(options.signal);
    try {
      const response = await this.#request(ref, "pull", `/manifests/${reference}`, { headers: { accept: manifestAcceptTypes.join(", ") } }, timeout.signal);
      if (!response.ok) {
        if (response.status === 404) {
          await response.body?.cancel();
          throw new NotFoundError(`image ${formatReference({ ...ref, tag: isDigest(reference) ? undefined : reference, digest: isDigest(reference) ? reference : undefined })} not found: the registry has no such manifest`);
        }
        return await this.#failure(response, `GET manifest ${reference}`, ref);
      }
      const declared = Number(response.headers.get("content-length") ?? "0");
      if (declared > registryManifestBytesMax) throw new ResourceExhaustedError(`manifest ${reference} is ${declared} bytes, over the ${registryManifestBytesMax}-byte limit`);
      const bytes = await readLimited(response.body, registryManifestBytesMax, `manifest ${reference}`);
      const digest = parseDigest(`sha256:${createHash("sha256").update(bytes).digest("hex")}`);
      const expected = isDigest(reference) ? reference : response.headers.get("docker-content-digest");
      if (expected !== null && isDigest(expected) && expected !== digest) {
        throw new InvalidArgumentError(`manifest ${reference} from ${ref.registry} has digest ${digest}, expected ${expected}: refusing it`);
      }
      const mediaType = (response.headers.get("content-type") ?? "").split(";")[0]?.trim() ?? "";
      return { bytes, mediaType, digest };
    } finally {
      timeout.done();
    }
  }

  async headManifest(ref: ImageReference, reference: string, options: { signal?: AbortSignal } = {}): Promise<ManifestHead | null> {
    const timeout = this.#timeoutSignal(options.signal);
    try {
      const response = await this.#request(ref, "pull", `/manifests/${reference}`, { method: "HEAD", headers: { accept: manifestAcceptTypes.join(", ") } }, timeout.signal);
      if (response.status === 404) return null;
      if (!response.ok) return await this.#failure(response, `HEAD manifest ${reference}`, ref);
      const digestHeader = response.headers.get("docker-content-digest");
      return {
        digest: digestHeader !== null && isDigest(digestHeader) ? digestHeader : undefined,
        mediaType: (response.headers.get("content-type") ?? "").split(";")[0]?.trim() ?? "",
        size: Number(response.headers.get("content-length") ?? "0"),
      };
    } finally {
      timeout.done();
    }
  }

  async openBlob(ref: ImageReference, descriptor: Descriptor, options: { signal?: AbortSignal } = {}): Promise<AsyncIterable<Uint8Array>> {
    // A stalled transfer must not hang a pull forever: abort when no byte arrives for a while.
    const controller = new AbortController();
    const onAbort = (): void => controller.abort(options.signal?.reason);
    options.signal?.addEventListener("abort", onAbort, { once: true });
    let cancelTimer = (): void => undefined;
    const arm = (): void => {
      cancelTimer();
      cancelTimer = this.#clock.setTimer(registryBlobIdleTimeoutMs, () =>
        controller.abort(new UnavailableError(`registry ${ref.registry} sent no data for blob ${descriptor.digest} in ${registryBlobIdleTimeoutMs} ms`)),
      );
    };
    const release = (): void => {
      cancelTimer();
      options.signal?.removeEventListener("abort", onAbort);
    };
    arm();
    let body: ReadableStream<Uint8Array>;
    try {
      const response = await this.#request(ref, "pull", `/blobs/${parseDigest(descriptor.digest)}`, {}, controller.signal);
      if (!response.ok) return await this.#failure(response, `GET blob ${descriptor.digest}`, ref);
      if (response.body === null) throw new UnavailableError(`registry ${ref.registry} sent no body for blob ${descriptor.digest}`);
      body = response.body;
    } catch (error) {
      release();
      throw error;
    }
    return (async function* (): AsyncGenerator<Uint8Array> {
      try {
        for await (const chunk of body) {
          arm();
          yield chunk;
        }
      } catch (error) {
        if (controller.signal.reason instanceof UnavailableError) throw controller.signal.reason;
        throw error;
      } finally {
        release();
      }
    })();
  }

  async hasBlob(ref: ImageReference, digest: Digest, options: { signal?: AbortSignal } = {}): Promise<boolean> {
    const timeout = this.#timeoutSignal(options.signal);
    try {
      const response = await this.#request(ref, "pull,push", `/blobs/${parseDigest(digest)}`, { method: "HEAD" }, timeout.signal);
      if (response.status === 404) return false;
      if (!response.ok) return await this.#failure(response, `HEAD blob ${digest}`, ref);
      return true;
    } finally {
      timeout.done();
    }
  }

  async pushBlob(
    ref: ImageReference,
    descriptor: Descriptor,
    source: () => Promise<AsyncIterable<Uint8Array> | Iterable<Uint8Array>>,
    options: { signal?: AbortSignal } = {},
  ): Promise<{ uploaded: boolean }> {
    if (await this.hasBlob(ref, descriptor.digest, options)) return { uploaded: false };
    const start = await this.#request(ref, "pull,push", "/blobs/uploads/", { method: "POST", headers: { "content-length": "0" } }, options.signal);
    if (start.status !== 202) return this.#failure(start, `start upload of ${descriptor.digest}`, ref);
    await start.body?.cancel();
    const location = start.headers.get("location");
    if (location === null) throw new UnavailableError(`registry ${ref.registry} started an upload without a Location`);
    const uploadUrl = new URL(location, this.#baseUrl(ref));
    uploadUrl.searchParams.set("digest", descriptor.digest);
    const body = Readable.toWeb(Readable.from(await source()));
    const response = await this.#request(
      ref,
      "pull,push",
      uploadUrl.toString(),
      {
        method: "PUT",
        headers: { "content-type": "application/octet-stream", "content-length": String(descriptor.size) },
        body,
        duplex: "half",
      },
      options.signal,
    );
    if (response.status !== 201) return this.#failure(response, `upload of ${descriptor.digest}`, ref);
    await response.body?.cancel();
    this.#logger.debug({ digest: descriptor.digest, size: descriptor.size }, "blob pushed");
    return { uploaded: true };
  }

  async putManifest(ref: ImageReference, reference: string, manifest: { mediaType: string; bytes: Buffer }, options: { signal?: AbortSignal } = {}): Promise<Digest> {
    const timeout = this.#timeoutSignal(options.signal);
    try {
      const response = await this.#request(
        ref,
        "pull,push",
        `/manifests/${reference}`,
        { method: "PUT", headers: { "content-type": manifest.mediaType }, body: manifest.bytes },
        timeout.signal,
      );
      if (response.status !== 201) return await this.#failure(response, `PUT manifest ${reference}`, ref);
      await response.body?.cancel();
      const computed = parseDigest(`sha256:${createHash("sha256").update(manifest.bytes).digest("hex")}`);
      const reported = response.headers.get("docker-content-digest");
      if (reported !== null && reported !== computed) {
        throw new InvalidArgumentError(`registry stored manifest ${reference} under ${reported}, but its digest is ${computed}`);
      }
      return computed;
    } finally {
      timeout.done();
    }
  }
}

/** A registry client; plain HTTP for loopback and `insecureRegistries`, HTTPS (system CAs) otherwise. */
export function createRegistryClient(options: RegistryClientOptions): RegistryClient {
  return new RegistryClientImpl(options);
}
