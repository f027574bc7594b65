import type { ServerCredentials } from "@grpc/grpc-js";

import { shoalVersion } from "../common/version.js";
import { createHealthHandlers, loadHealthProto, startGrpcServer, type GrpcServer, type GrpcService } from "../rpc/index.js";
import type { HostPort } from "./config.js";

/**
 * The node's one cluster gRPC server on --listen-addr. Outside a swarm it serves Health
 * without TLS; in a manager role it is replaced by one mTLS server with Health plus the
 * manager's services, on the same port (the first bound port when --listen-addr asked for 0,
 * so that the address other nodes learned stays valid).
 */
export class GrpcEndpoint {
  readonly #listen: HostPort;
  #server: GrpcServer | null = null;
  #port: number;

  constructor(listen: HostPort) {
    this.#listen = listen;
    this.#port = listen.port;
  }

  /** The bound "host:port"; empty before the first serve. */
  get address(): string {
    return this.#server?.address ?? "";
  }

  /** Uses `port` instead of a configured 0 (a restarted manager keeps its advertised port). */
  preferPort(port: number): void {
    if (this.#server === null && this.#listen.port === 0) this.#port = port;
  }

  /** Closes the current server (if any) and serves Health plus `services` on the same port. */
  async serve(options: { nodeId: string; services?: readonly GrpcService[]; credentials?: ServerCredentials }): Promise<string> {
    await this.close();
    const healthProto = loadHealthProto();
    const health: GrpcService = {
      definition: healthProto.shoal.v1.Health.service,
      handlers: createHealthHandlers({ nodeId: options.nodeId, version: shoalVersion, status: (component) => (component === "" ? "serving" : undefined) }),
    };
    this.#server = await startGrpcServer({
      host: this.#listen.host,
      port: this.#port,
      services: [health, ...(options.services ?? [])],
      ...(options.credentials === undefined ? {} : { credentials: options.credentials }),
    });
    this.#port = Number(this.#server.address.slice(this.#server.address.lastIndexOf(":") + 1));
    return this.#server.address;
  }

  async close(): Promise<void> {
    const server = this.#server;
    this.#server = null;
    await server?.close();
  }
}
