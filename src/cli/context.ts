import type { Writable } from "node:stream";

import { ApiClient, defaultHost, parseDaemonHost } from "./client.js";

/** What every command gets: the daemon client (made on first use) and the output streams. */
export interface CliContext {
  client(): ApiClient;
  readonly out: Writable;
  readonly err: Writable;
}

export function createCliContext(options: { host: () => string | undefined; env: Readonly<Record<string, string | undefined>>; out: Writable; err: Writable }): CliContext {
  let client: ApiClient | undefined;
  return {
    client() {
      client ??= new ApiClient(parseDaemonHost(options.host() ?? options.env.SHOAL_HOST ?? defaultHost));
      return client;
    },
    out: options.out,
    err: options.err,
  };
}
