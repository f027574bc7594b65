import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders } from "node:http";
import type { Readable } from "node:stream";

import { InvalidArgumentError, UnavailableError, errorMessage } from "../common/errors.js";
import { dockerApiVersion } from "../common/version.js";

export const defaultHost = "unix:///run/shoal/shoald.sock";

export type DaemonAddress = { kind: "unix"; path: string } | { kind: "tcp"; host: string; port: number };

/** Parses `-H`/`SHOAL_HOST`: unix:///path, tcp://host:port, http://host:port, or a bare socket path. */
export function parseDaemonHost(value: string): DaemonAddress {
  if (value.startsWith("unix://")) {
    const path = value.slice("unix://".length);
    if (path.startsWith("/")) return { kind: "unix", path };
  } else if (value.startsWith("/")) {
    return { kind: "unix", path: value };
  } else {
    const match = /^(?:tcp|http):\/\/(\[[0-9a-fA-F:.]+\]|[^:/]+):(\d{1,5})\/?$/.exec(value);
    if (match?.[1] !== undefined && match[2] !== undefined) {
      return { kind: "tcp", host: match[1].replace(/^\[|\]$/g, ""), port: Number(match[2]) };
    }
  }
  throw new InvalidArgumentError(`invalid daemon host "${value}": use unix:///path/to/shoald.sock or tcp://HOST:PORT`);
}

export function describeAddress(address: DaemonAddress): string {
  return address.kind === "unix" ? `unix://${address.path}` : `tcp://${address.host}:${address.port}`;
}

/** An error the daemon answered with: its HTTP status and its `{"message"}`. */
export class DaemonResponseError extends Error {
  override readonly name = "DaemonResponseError";
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export interface ApiResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: IncomingMessage;
}

export interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined>;
  /** A JSON body. */
  body?: unknown;
  /** A streamed body (an image archive), sent with `contentType`. */
  upload?: { stream: Readable; contentType: string };
  signal?: AbortSignal;
}

/** Talks to shoald's REST API over its unix socket or TCP address. */
export class ApiClient {
  constructor(readonly address: DaemonAddress) {}

  /** Sends a request and returns the raw response stream, for logs and other streams. */
  stream(method: string, path: string, options: RequestOptions = {}): Promise<ApiResponse> {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(options.query ?? {})) {
      if (value !== undefined) query.set(key, String(value));
    }
    const search = query.size === 0 ? "" : `?${query.toString()}`;
    const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
    const target = this.address.kind === "unix" ? { socketPath: this.address.path } : { host: this.address.host, port: this.address.port };
    const headers: OutgoingHttpHeaders =
      options.upload !== undefined
        ? { "content-type": options.upload.contentType, "transfer-encoding": "chunked" }
        : payload === undefined
          ? {}
          : { "content-type": "application/json", "content-length": Buffer.byteLength(payload) };
    return new Promise((resolve, reject) => {
      const request = httpRequest(
        {
          ...target,
          method,
          path: `/v${dockerApiVersion}${path}${search}`,
          headers,
          ...(options.signal === undefined ? {} : { signal: options.signal }),
        },
        (response) => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: response }),
      );
      request.on("error", (error) => reject(this.#unreachable(error)));
      if (options.upload === undefined) {
        request.end(payload);
        return;
      }
      options.upload.stream.on("error", (error) => request.destroy(error));
      options.upload.stream.pipe(request);
    });
  }

  /** Sends a request and parses the JSON answer; a non-2xx status throws DaemonResponseError. */
  async json(method: string, path: string, options: RequestOptions = {}): Promise<unknown> {
    const response = await this.stream(method, path, options);
    const text = await readAll(response.body);
    const parsed = parseJsonText(text);
    if (response.status >= 400) {
      const message = typeof parsed === "object" && parsed !== null && "message" in parsed && typeof parsed.message === "string" ? parsed.message : text;
      throw new DaemonResponseError(response.status, message);
    }
    return parsed;
  }

  #unreachable(error: Error): Error {
    if (error.name === "AbortError") return error;
    const code = "code" in error && typeof error.code === "string" ? error.code : "";
    const where = describeAddress(this.address);
    const hint =
      code === "EACCES"
        ? "permission denied: run as root or as a member of the socket's group"
        : "is shoald running? Start it with `shoald` (as root), or point -H / SHOAL_HOST at a running daemon";
    return new UnavailableError(`cannot reach shoald at ${where} (${code || errorMessage(error)}): ${hint}`, { cause: error });
  }
}

/** Reads a whole response body as text. */
export async function readAll(stream: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
  return Buffer.concat(chunks).toString("utf8");
}

function parseJsonText(text: string): unknown {
  if (text === "") return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
