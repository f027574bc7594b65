import diagnosticsChannel from "node:diagnostics_channel";
import { Socket } from "node:net";

import { Server, ServerCredentials, type ServiceDefinition, type UntypedServiceImplementation } from "@grpc/grpc-js";

/** Largest gRPC message either side accepts; raft snapshots travel in chunks below it. */
export const grpcMessageSizeBytesMax = 16 * 1024 * 1024;
/** How long a graceful gRPC shutdown may take before open streams are cut. */
export const grpcShutdownGraceMs = 2_000;

/** Node's built-in channel that announces each connection a server accepts. */
const acceptedSocketChannel = "net.server.socket";

export interface Keepalive {
  /** Each connection is pinged this often. */
  readonly timeMs: number;
  /** A connection whose ping goes unanswered this long is closed, with the calls on it. */
  readonly timeoutMs: number;
}

/**
 * Without server pings, the calls of a peer that vanished without closing its connection
 * (powered off, partitioned, frozen) stay open on this side for as long as nothing is
 * written to them, and many minutes after (TCP's retransmission limit): a raft stream or a
 * worker's session would go on holding its queue and its place. The raft transport's
 * clients ping their peers with the same figures.
 */
export const grpcKeepalive: Keepalive = { timeMs: 10_000, timeoutMs: 5_000 };

export interface GrpcServer {
  /** The bound "host:port" (the real port when 0 was asked for). */
  readonly address: string;
  close(): Promise<void>;
}

export interface GrpcService {
  definition: ServiceDefinition;
  handlers: UntypedServiceImplementation;
}

function formatHost(host: string): string {
  return host.includes(":") ? `[${host}]` : host;
}

/** Starts a gRPC server on host:port with the given services. */
export async function startGrpcServer(options: {
  host: string;
  port: number;
  services: readonly GrpcService[];
  credentials?: ServerCredentials;
  keepalive?: Keepalive;
}): Promise<GrpcServer> {
  const keepalive = options.keepalive ?? grpcKeepalive;
  const server = new Server({
    "grpc.max_receive_message_length": grpcMessageSizeBytesMax,
    "grpc.max_send_message_length": grpcMessageSizeBytesMax,
    "grpc.keepalive_time_ms": keepalive.timeMs,
    "grpc.keepalive_timeout_ms": keepalive.timeoutMs,
  });
  for (const service of options.services) server.addService(service.definition, service.handlers);
  const credentials = options.credentials ?? ServerCredentials.createInsecure();
  const host = formatHost(options.host);
  // The connections this server accepted, for close() to cut (see there). grpc-js does not
  // expose them; Node announces every accepted connection on this channel, and those on
  // this server's port are its own: a shoal process runs one gRPC server per port.
  const accepted = new Set<Socket>();
  let boundPort: number | undefined;
  const onAccepted = (message: unknown): void => {
    if (typeof message !== "object" || message === null || !("socket" in message)) return;
    const socket = message.socket;
    if (!(socket instanceof Socket) || boundPort === undefined || socket.localPort !== boundPort) return;
    accepted.add(socket);
    socket.once("close", () => accepted.delete(socket));
  };
  diagnosticsChannel.subscribe(acceptedSocketChannel, onAccepted);
  try {
    boundPort = await new Promise<number>((resolve, reject) => {
      server.bindAsync(`${host}:${options.port}`, credentials, (error, bound) => {
        if (error === null) resolve(bound);
        else reject(error);
      });
    });
  } catch (error) {
    diagnosticsChannel.unsubscribe(acceptedSocketChannel, onAccepted);
    throw error;
  }
  const finishClose = (): void => {
    diagnosticsChannel.unsubscribe(acceptedSocketChannel, onAccepted);
    // After a graceful close, Node's http2 half-closes each connection and keeps it until
    // the peer closes its side, which a frozen peer never does: the connection, and with it
    // the process, stayed alive (measured: still there 20 s later).
    for (const socket of accepted) socket.destroy();
  };
  return {
    address: `${host}:${boundPort}`,
    close() {
      return new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          server.forceShutdown();
          // Not waiting for tryShutdown's callback: with a peer that stopped reading it had
          // still not come 25 s after forceShutdown (measured), and close() hung with it.
          finishClose();
          resolve();
        }, grpcShutdownGraceMs);
        server.tryShutdown(() => {
          clearTimeout(force);
          finishClose();
          resolve();
        });
      });
    },
  };
}
