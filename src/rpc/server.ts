import { Server, ServerCredentials, type ServiceDefinition, type UntypedServiceImplementation } from "@grpc/grpc-js";

/** Largest gRPC message either side accepts; raft snapshots travel in chunks below it. */
export const grpcMessageSizeBytesMax = 16 * 1024 * 1024;
/** How long a graceful gRPC shutdown may take before open streams are cut. */
export const grpcShutdownGraceMs = 2_000;

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
}): Promise<GrpcServer> {
  const server = new Server({
    "grpc.max_receive_message_length": grpcMessageSizeBytesMax,
    "grpc.max_send_message_length": grpcMessageSizeBytesMax,
  });
  for (const service of options.services) server.addService(service.definition, service.handlers);
  const credentials = options.credentials ?? ServerCredentials.createInsecure();
  const host = formatHost(options.host);
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${host}:${options.port}`, credentials, (error, bound) => {
      if (error === null) resolve(bound);
      else reject(error);
    });
  });
  return {
    address: `${host}:${port}`,
    close() {
      return new Promise<void>((resolve) => {
        const force = setTimeout(() => server.forceShutdown(), grpcShutdownGraceMs);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
    },
  };
}
