import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { credentials as grpcCredentials } from "@grpc/grpc-js";
import { pino } from "pino";

import type { ServiceLogMessage } from "../../src/api/docker-swarm/index.js";
import type { LogEntry, LogReadOptions } from "../../src/engine/runtime/logs.js";
import { createLeaderLogSource, createLogBrokerService, LogBroker, resolveLogTasks } from "../../src/manager/logbroker/index.js";
import { startGrpcServer } from "../../src/rpc/index.js";
import { createLogPublisher, type WorkerLogContainers } from "../../src/worker/index.js";
import type { MemoryStore } from "../../src/manager/store/index.js";
import { localStore, newService, newTask } from "../manager/store/fixtures.js";
import { waitFor } from "../helpers/wait.js";

const silentLogger = pino({ level: "silent" });
const nodeId = "node-1";

function entry(text: string, stream: "stdout" | "stderr" = "stdout"): LogEntry {
  return { stream, time: "2026-01-01T00:00:00.000000000Z", timeMs: 1_767_225_600_000, text: `${text}\n` };
}

/** Containers of two tasks; `live` lines appear in follow reads after the existing ones. */
class FakeContainers implements WorkerLogContainers {
  /** Lines of c3, made as they are read, counted in `produced`. */
  bulkLines = 0;
  produced = 0;
  readonly existing = new Map<string, LogEntry[]>([
    ["c1", [entry("a1"), entry("a2", "stderr"), entry("a3")]],
    ["c2", [entry("b1")]],
  ]);
  readonly reads: Array<{ id: string; options: LogReadOptions }> = [];
  activeReaders = 0;
  #live: Array<() => void> = [];
  #pending: LogEntry[] = [];

  list(): Array<{ record: { id: string; labels: Record<string, string> }; removing: boolean }> {
    return [
      { record: { id: "c1", labels: { "com.docker.swarm.task.id": "task-1", "com.docker.swarm.service.id": "svc" } }, removing: false },
      { record: { id: "c2", labels: { "com.docker.swarm.task.id": "task-2", "com.docker.swarm.service.id": "svc" } }, removing: false },
      { record: { id: "c3", labels: { "com.docker.swarm.task.id": "task-3", "com.docker.swarm.service.id": "bulk" } }, removing: false },
    ];
  }

  push(line: LogEntry): void {
    this.#pending.push(line);
    for (const wake of this.#live.splice(0)) wake();
  }

  logs(reference: string, options: LogReadOptions = {}): AsyncIterable<LogEntry> {
    this.reads.push({ id: reference, options });
    return this.#read(reference, options);
  }

  async *#read(reference: string, options: LogReadOptions): AsyncGenerator<LogEntry> {
    this.activeReaders += 1;
    try {
      for (let index = 0; reference === "c3" && index < this.bulkLines; index += 1) {
        this.produced += 1;
        yield entry(`bulk line ${index} ${"x".repeat(100)}`);
      }
      const lines = (this.existing.get(reference) ?? []).filter((line) => (line.stream === "stdout" ? options.stdout !== false : options.stderr !== false));
      yield* options.tail === undefined ? lines : lines.slice(-options.tail);
      while (options.follow === true && options.signal?.aborted !== true) {
        const next = this.#pending.shift();
        if (next !== undefined) {
          yield next;
          continue;
        }
        await new Promise<void>((resolve) => {
          this.#live.push(resolve);
          options.signal?.addEventListener("abort", () => resolve(), { once: true });
        });
      }
    } finally {
      this.activeReaders -= 1;
    }
  }
}

/** A store with services "svc" (tasks 1 and 2, and task 4 not yet given a node) and "bulk" (task 3). */
async function storeWithTasks(): Promise<MemoryStore> {
  const store = localStore();
  await store.update((tx) => {
    const svc = tx.create("service", newService("svc", "svc", 3));
    const bulk = tx.create("service", newService("bulk", "bulk"));
    tx.create("task", { ...newTask("task-1", svc, 1, "running"), nodeId });
    tx.create("task", { ...newTask("task-2", svc, 2, "running"), nodeId });
    tx.create("task", newTask("task-4", svc, 3, "pending"));
    tx.create("task", { ...newTask("task-3", bulk, 1, "running"), nodeId });
  });
  return store;
}

async function harness(t: { after: (fn: () => Promise<void>) => void }): Promise<{ broker: LogBroker; containers: FakeContainers; address: string }> {
  const store = await storeWithTasks();
  const broker = new LogBroker({ resolveTasks: (selector) => store.view((tx) => resolveLogTasks(tx, selector)), logger: silentLogger });
  const service = createLogBrokerService({
    broker,
    logger: silentLogger,
    isLeader: () => true,
    leaderAddress: () => undefined,
    // Loopback without TLS: the one caller is this node, as a manager so SubscribeLogs works too.
    authenticate: () => ({ nodeId, role: "manager", clusterId: "cluster" }),
  });
  const server = await startGrpcServer({ host: "127.0.0.1", port: 0, services: [service] });
  const containers = new FakeContainers();
  const publisher = createLogPublisher({ containers, session: () => ({ address: server.address, nodeId }), logger: silentLogger });
  publisher.start();
  t.after(async () => {
    await publisher.stop();
    broker.close();
    await server.close();
    store.close();
  });
  await waitFor("the worker to listen for subscriptions", () => (broker.attachedNodes().includes(nodeId) ? true : undefined), { timeoutMs: 5_000 });
  return { broker, containers, address: server.address };
}

async function nextText(iterator: AsyncIterator<ServiceLogMessage>): Promise<string> {
  const step = await iterator.next();
  assert.ok(step.done !== true, "the request ended instead of sending a line");
  return Buffer.from(step.value.line).toString("utf8");
}

async function collect(iterable: AsyncIterable<ServiceLogMessage>): Promise<string[]> {
  const lines: string[] = [];
  for await (const message of iterable) lines.push(`${message.context.taskId} ${message.stream} ${Buffer.from(message.line).toString("utf8").trimEnd()}`);
  return lines;
}

describe("worker log publisher", () => {
  test("serves a service request from the engine's container logs over gRPC, with tail and stream choice applied per task", async (t) => {
    const { broker, containers } = await harness(t);
    const lines = await collect(broker.logs({ kind: "service", serviceId: "svc" }, { follow: false, tail: 1, stdout: true, stderr: false, signal: new AbortController().signal }));
    assert.deepEqual(lines.sort(), ["task-1 stdout a3", "task-2 stdout b1"]);
    assert.deepEqual(
      containers.reads.map((read) => ({ id: read.id, tail: read.options.tail, stderr: read.options.stderr })),
      [
        { id: "c1", tail: 1, stderr: false },
        { id: "c2", tail: 1, stderr: false },
      ],
    );
  });

  test("a follower's relay (SubscribeLogs) gets the same lines as the leader's broker", async (t) => {
    const { address } = await harness(t);
    const remote = createLeaderLogSource({ leaderAddress: () => address, credentials: () => grpcCredentials.createInsecure() });
    const lines = await collect(remote.logs({ kind: "task", taskId: "task-1" }, { follow: false, stdout: true, stderr: true, signal: new AbortController().signal }));
    assert.deepEqual(lines, ["task-1 stdout a1", "task-1 stderr a2", "task-1 stdout a3"]);
  });

  test("follow streams new lines until the client goes away, then the worker stops reading", async (t) => {
    const { broker, containers } = await harness(t);
    const abort = new AbortController();
    const iterator = broker.logs({ kind: "task", taskId: "task-2" }, { follow: true, stdout: true, stderr: true, signal: abort.signal })[Symbol.asyncIterator]();
    assert.equal(await nextText(iterator), "b1\n");
    containers.push(entry("new line"));
    assert.equal(await nextText(iterator), "new line\n");
    abort.abort();
    await iterator.return?.();
    await waitFor("the worker's reader to stop", () => (containers.activeReaders === 0 ? true : undefined), { timeoutMs: 5_000 });
    assert.equal(broker.subscriptionCount, 0);
  });

  test("a client that does not read holds the worker back (gRPC flow control and bounded queues), and nothing is dropped", async (t) => {
    const { broker, containers } = await harness(t);
    containers.bulkLines = 100_000;
    const iterator = broker.logs({ kind: "task", taskId: "task-3" }, { follow: false, stdout: true, stderr: true, signal: new AbortController().signal })[Symbol.asyncIterator]();
    assert.equal(await nextText(iterator), `bulk line 0 ${"x".repeat(100)}\n`);
    let settled = -1;
    await waitFor("the worker to stop producing", async () => {
      const before = containers.produced;
      await new Promise((resolve) => setTimeout(resolve, 100));
      if (containers.produced !== before || before === settled) return undefined;
      settled = before;
      return true;
    }, { timeoutMs: 10_000 });
    // About 8,000 lines fit in the broker's queue and the gRPC buffers.
    assert.ok(containers.produced < containers.bulkLines / 5, `the worker read ${containers.produced} of ${containers.bulkLines} lines while the client read one`);
    let read = 1;
    for (let step = await iterator.next(); step.done !== true; step = await iterator.next()) read += 1;
    assert.equal(read, containers.bulkLines);
  });
});
