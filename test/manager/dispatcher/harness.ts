import { credentials, Metadata, type ClientReadableStream, type ServiceError } from "@grpc/grpc-js";
import type { TestContext } from "node:test";

import { pino } from "pino";

import type { Clock } from "../../../src/common/clock.js";
import type { ProtoGrpcType as DispatcherProto } from "../../../src/gen/dispatcher.js";
import type { DispatcherClient } from "../../../src/gen/shoal/v1/Dispatcher.js";
import { createDispatcher, type CallerIdentity, type Dispatcher, type DispatcherCall, type DispatcherOptions } from "../../../src/manager/dispatcher/index.js";
import { MemoryStore } from "../../../src/manager/store/index.js";
import { loadProto } from "../../../src/rpc/proto.js";
import { startGrpcServer, type GrpcServer } from "../../../src/rpc/server.js";

export const silentLogger = pino({ level: "silent" });

/** Test-only: the caller names its node in a header. Production identifies callers by their mTLS certificate. */
export const testNodeIdHeader = "x-shoal-test-node-id";

export function identifyByHeader(call: DispatcherCall): CallerIdentity | null {
  const [nodeId] = call.metadata.get(testNodeIdHeader);
  if (typeof nodeId !== "string" || nodeId === "") return null;
  return { nodeId, role: "worker" };
}

export function nodeMetadata(nodeId: string): Metadata {
  const metadata = new Metadata();
  metadata.set(testNodeIdHeader, nodeId);
  return metadata;
}

export interface Manager {
  store: MemoryStore;
  dispatcher: Dispatcher;
  server: GrpcServer;
  address: string;
  close(): Promise<void>;
}

/** A store, a started dispatcher and a gRPC server on 127.0.0.1 port 0. */
export async function startManager(options: { clock: Clock; store?: MemoryStore } & Partial<DispatcherOptions>): Promise<Manager> {
  const store = options.store ?? new MemoryStore({ proposer: null, logger: silentLogger, clock: options.clock });
  const dispatcher = createDispatcher({ store, logger: silentLogger, identify: identifyByHeader, random: () => 0, ...options });
  dispatcher.start();
  const server = await startGrpcServer({ host: "127.0.0.1", port: 0, services: [dispatcher.grpcService()] });
  return {
    store,
    dispatcher,
    server,
    address: server.address,
    close: async () => {
      await dispatcher.stop();
      await server.close();
    },
  };
}

export function dispatcherClient(address: string): DispatcherClient {
  const proto = loadProto<DispatcherProto>("shoal/v1/dispatcher.proto");
  return new proto.shoal.v1.Dispatcher(address, credentials.createInsecure());
}

export const testDescription = {
  hostname: "worker-1",
  platformOs: "linux",
  platformArchitecture: "amd64",
  nanoCpus: 2_000_000_000,
  memoryBytes: 1024 ** 3,
  engineVersion: "0.1.0",
  engineLabels: { disk: "ssd" },
};

/** Collects a server stream's messages and its final error. */
export class StreamRecorder<T> {
  readonly messages: T[] = [];
  error: ServiceError | undefined;
  ended = false;

  constructor(readonly call: ClientReadableStream<T>) {
    call.on("data", (message: T) => this.messages.push(message));
    call.on("error", (error: ServiceError) => {
      this.error = error;
    });
    call.on("end", () => {
      this.ended = true;
    });
  }
}

export function unary<T>(invoke: (callback: (error: ServiceError | null, value?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    invoke((error, value) => {
      if (error !== null) reject(error);
      else if (value === undefined) reject(new Error("no response"));
      else resolve(value);
    });
  });
}

const cleanupStacks = new WeakMap<TestContext, (() => unknown)[]>();

/**
 * Registers `cleanup` to run after the test in reverse order of registration (a server
 * stops after the clients registered later, a folder is deleted after the agent using
 * it stopped), running every cleanup even when one fails.
 */
export function defer(t: TestContext, cleanup: () => unknown): void {
  const existing = cleanupStacks.get(t);
  if (existing !== undefined) {
    existing.push(cleanup);
    return;
  }
  const stack: (() => unknown)[] = [cleanup];
  cleanupStacks.set(t, stack);
  t.after(async () => {
    const errors: unknown[] = [];
    for (const run of stack.reverse()) {
      try {
        await run();
      } catch (error) {
        errors.push(error);
      }
    }
    if (errors.length > 0) throw new AggregateError(errors, "test cleanup failed");
  });
}
