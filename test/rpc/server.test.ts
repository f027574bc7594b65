import assert from "node:assert/strict";
import diagnosticsChannel from "node:diagnostics_channel";
import { once } from "node:events";
import { createServer, connect, Socket } from "node:net";
import { test } from "node:test";

import { credentials, makeGenericClientConstructor, type ServerDuplexStream, type ServiceDefinition } from "@grpc/grpc-js";

import { grpcShutdownGraceMs, startGrpcServer, type GrpcServer } from "../../src/rpc/server.js";
import { waitFor } from "../helpers/wait.js";

const passThrough = (bytes: Buffer): Buffer => bytes;
const streamPath = "/test.Hang/Stream";
const hangService: ServiceDefinition = {
  Stream: {
    path: streamPath,
    requestStream: true,
    responseStream: true,
    requestSerialize: passThrough,
    requestDeserialize: passThrough,
    responseSerialize: passThrough,
    responseDeserialize: passThrough,
  },
};

/** A TCP relay that can stop relaying while keeping both connections open: a peer that froze. */
async function startRelay(cleanups: (() => unknown)[], target: string): Promise<{ address: string; freeze(): void }> {
  const [host = "", port = ""] = target.split(":");
  const sockets: Socket[] = [];
  const relay = createServer((inbound) => {
    const outbound = connect(Number(port), host);
    sockets.push(inbound, outbound);
    inbound.pipe(outbound);
    outbound.pipe(inbound);
  });
  relay.listen(0, "127.0.0.1");
  await once(relay, "listening");
  cleanups.push(() => {
    for (const socket of sockets) socket.destroy();
    relay.close();
  });
  const bound = relay.address();
  assert.ok(bound !== null && typeof bound === "object");
  return {
    address: `127.0.0.1:${bound.port}`,
    freeze() {
      for (const socket of sockets) {
        socket.unpipe();
        socket.pause();
      }
    },
  };
}

/** Opens a stream to `address` and waits until `taken()` says the server's handler has it. */
async function openStream(cleanups: (() => unknown)[], address: string, taken: () => boolean): Promise<void> {
  const Client = makeGenericClientConstructor(hangService, "Hang");
  const client = new Client(address, credentials.createInsecure());
  cleanups.push(() => client.close());
  const stream = client.makeBidiStreamRequest<Buffer, Buffer>(streamPath, passThrough, passThrough);
  // The client sees its end cut when the server gives up; that is expected here.
  stream.on("error", () => undefined);
  stream.write(Buffer.from("hello"));
  await waitFor("the server to take the call", () => (taken() ? true : undefined));
}

/** A server whose calls never answer; `calls()` counts the calls its handler took. */
async function startHangingServer(): Promise<{ server: GrpcServer; calls: () => number }> {
  let calls = 0;
  const server = await startGrpcServer({
    host: "127.0.0.1",
    port: 0,
    services: [
      {
        definition: hangService,
        handlers: {
          Stream(call: ServerDuplexStream<Buffer, Buffer>) {
            calls += 1;
            call.on("data", () => undefined);
          },
        },
      },
    ],
  });
  return { server, calls: () => calls };
}

test("the server closes the calls of a peer that stops answering its keepalive pings", async (t) => {
  // Undone last first: the relay's connections go before the server waits for its calls.
  const cleanups: (() => unknown)[] = [];
  t.after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });
  const calls: ServerDuplexStream<Buffer, Buffer>[] = [];
  const cancelled: ServerDuplexStream<Buffer, Buffer>[] = [];
  const server = await startGrpcServer({
    host: "127.0.0.1",
    port: 0,
    keepalive: { timeMs: 200, timeoutMs: 300 },
    services: [
      {
        definition: hangService,
        handlers: {
          Stream(call: ServerDuplexStream<Buffer, Buffer>) {
            calls.push(call);
            call.on("cancelled", () => cancelled.push(call));
            // Never answers: the stream stays open for as long as its connection does.
            call.on("data", () => undefined);
          },
        },
      },
    ],
  });
  cleanups.push(() => server.close());
  const relay = await startRelay(cleanups, server.address);
  await openStream(cleanups, relay.address, () => calls.length === 1);
  // Watched over a window of several keepalive periods: while the peer answers pings, its
  // call must stay open.
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  assert.equal(cancelled.length, 0, "a call was closed while its peer answered pings");
  relay.freeze();
  await waitFor("the server to close the frozen peer's call", () => (cancelled.length === 1 ? true : undefined), { timeoutMs: 5_000 });
});

test("close() returns after the grace period even while a peer's connection is frozen", async (t) => {
  const cleanups: (() => unknown)[] = [];
  t.after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });
  const { server, calls } = await startHangingServer();
  const relay = await startRelay(cleanups, server.address);
  await openStream(cleanups, relay.address, () => calls() === 1);
  relay.freeze();
  const started = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    server.close().then(() => "closed"),
    new Promise<string>((resolve) => {
      timer = setTimeout(() => resolve("still closing"), grpcShutdownGraceMs + 3_000);
    }),
  ]);
  clearTimeout(timer);
  assert.equal(outcome, "closed", `close() had not returned ${Date.now() - started} ms after it was called`);
});

test("close() cuts a frozen peer's connection, which would otherwise keep the process alive", async (t) => {
  const cleanups: (() => unknown)[] = [];
  t.after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });
  // The server's side of each connection, seen as the server itself sees them.
  const accepted: Socket[] = [];
  const onAccepted = (message: unknown): void => {
    if (typeof message === "object" && message !== null && "socket" in message && message.socket instanceof Socket) {
      accepted.push(message.socket);
    }
  };
  diagnosticsChannel.subscribe("net.server.socket", onAccepted);
  cleanups.push(() => diagnosticsChannel.unsubscribe("net.server.socket", onAccepted));
  const { server, calls } = await startHangingServer();
  const relay = await startRelay(cleanups, server.address);
  await openStream(cleanups, relay.address, () => calls() === 1);
  const serverPort = Number(server.address.split(":").at(-1));
  const serverSide = accepted.filter((socket) => socket.localPort === serverPort);
  assert.equal(serverSide.length, 1, "the server accepted one connection, from the relay");
  relay.freeze();
  await server.close();
  await waitFor("the frozen peer's connection to be closed", () => (serverSide.every((socket) => socket.destroyed) ? true : undefined), {
    timeoutMs: 2_000,
  });
});
