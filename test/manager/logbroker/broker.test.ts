import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { pino } from "pino";

import type { LogSelector, ServiceLogMessage, ServiceLogOptions } from "../../../src/api/docker-swarm/index.js";
import { NotFoundError, PermissionDeniedError, UnavailableError } from "../../../src/common/errors.js";
import { followRescanMs, LogBroker, subscriptionQueueLinesMax, type LogTask, type SubscriptionEvent } from "../../../src/manager/logbroker/index.js";
import { FakeClock } from "../../helpers/fake-clock.js";

const silentLogger = pino({ level: "silent" });

const tasks: LogTask[] = [
  { taskId: "task-a1", serviceId: "svc-a", nodeId: "node-1" },
  { taskId: "task-a2", serviceId: "svc-a", nodeId: "node-2" },
  { taskId: "task-b1", serviceId: "svc-b", nodeId: "node-1" },
];

function resolveTasks(selector: LogSelector): LogTask[] {
  if (selector.kind === "service") return tasks.filter((task) => task.serviceId === selector.serviceId);
  const task = tasks.find((candidate) => candidate.taskId === selector.taskId);
  if (task === undefined) throw new NotFoundError(`task ${selector.taskId} not found`);
  return [task];
}

function newBroker(clock = new FakeClock()): LogBroker {
  let next = 0;
  return new LogBroker({ resolveTasks, logger: silentLogger, clock, newSubscriptionId: () => `sub-${++next}` });
}

/** A worker that records what the broker sends it. */
function attach(broker: LogBroker, nodeId: string): { events: SubscriptionEvent[]; detach: () => void } {
  const events: SubscriptionEvent[] = [];
  const detach = broker.attachWorker(nodeId, (event) => events.push(event));
  return { events, detach };
}

function line(taskId: string, text: string, nodeId = "forged"): ServiceLogMessage {
  return { stream: "stdout", line: Buffer.from(`${text}\n`), timestampMs: 1_700_000_000_000, context: { taskId, serviceId: "forged", nodeId } };
}

function options(signal: AbortSignal, follow = false): ServiceLogOptions {
  return { follow, stdout: true, stderr: true, signal };
}

function text(message: ServiceLogMessage): string {
  return Buffer.from(message.line).toString("utf8");
}

async function collect(iterable: AsyncIterable<ServiceLogMessage>): Promise<ServiceLogMessage[]> {
  const lines: ServiceLogMessage[] = [];
  for await (const message of iterable) lines.push(message);
  return lines;
}

async function lineOf(step: Promise<IteratorResult<ServiceLogMessage>>): Promise<ServiceLogMessage> {
  const result = await step;
  assert.ok(result.done !== true, "the request ended instead of sending a line");
  return result.value;
}

function openId(events: readonly SubscriptionEvent[]): string {
  const open = events.find((event) => event.type === "open");
  assert.ok(open !== undefined, "the worker got no subscription");
  return open.subscriptionId;
}

/** Starts the request and waits until the broker has sent its subscriptions. */
async function start(iterable: AsyncIterable<ServiceLogMessage>): Promise<{ iterator: AsyncIterator<ServiceLogMessage>; first: Promise<IteratorResult<ServiceLogMessage>> }> {
  const iterator = iterable[Symbol.asyncIterator]();
  const first = iterator.next();
  await new Promise((resolve) => setImmediate(resolve));
  return { iterator, first };
}

describe("LogBroker", () => {
  test("a service request reaches each node with its own tasks and merges their lines with contexts from the store", async () => {
    const broker = newBroker();
    const one = attach(broker, "node-1");
    const two = attach(broker, "node-2");
    const result = collect(broker.logs({ kind: "service", serviceId: "svc-a" }, { ...options(new AbortController().signal), tail: 3, sinceMs: 5 }));
    await new Promise((resolve) => setImmediate(resolve));
    const openOne = one.events[0];
    assert.deepEqual(openOne, { type: "open", subscriptionId: "sub-1", taskIds: ["task-a1"], options: { follow: false, stdout: true, stderr: true, tail: 3, sinceMs: 5 } });
    assert.deepEqual(two.events[0]?.type === "open" ? two.events[0].taskIds : [], ["task-a2"]);
    await broker.publish("node-1", "sub-1", [line("task-a1", "one")]);
    await broker.publish("node-2", "sub-1", [line("task-a2", "two")]);
    broker.finish("node-1", "sub-1", null);
    broker.finish("node-2", "sub-1", null);
    const lines = await result;
    assert.deepEqual(lines.map(text), ["one\n", "two\n"]);
    assert.deepEqual(lines[0]?.context, { taskId: "task-a1", serviceId: "svc-a", nodeId: "node-1" });
    assert.deepEqual(lines[1]?.context, { taskId: "task-a2", serviceId: "svc-a", nodeId: "node-2" });
    assert.equal(broker.subscriptionCount, 0);
  });

  test("an unknown task fails the request with NotFoundError", async () => {
    const broker = newBroker();
    await assert.rejects(collect(broker.logs({ kind: "task", taskId: "nope" }, options(new AbortController().signal))), NotFoundError);
  });

  test("when no addressed node is attached the request fails with UnavailableError naming the nodes", async () => {
    const broker = newBroker();
    await assert.rejects(collect(broker.logs({ kind: "service", serviceId: "svc-a" }, options(new AbortController().signal))), (error: unknown) => {
      assert.ok(error instanceof UnavailableError);
      assert.match(error.message, /node-1, node-2/);
      return true;
    });
  });

  test("a node that is not attached gets a stderr warning for each of its tasks; the others' lines still come", async () => {
    const broker = newBroker();
    attach(broker, "node-1");
    const result = collect(broker.logs({ kind: "service", serviceId: "svc-a" }, options(new AbortController().signal)));
    await new Promise((resolve) => setImmediate(resolve));
    await broker.publish("node-1", "sub-1", [line("task-a1", "one")]);
    broker.finish("node-1", "sub-1", null);
    const lines = await result;
    assert.equal(lines.length, 2);
    const warning = lines.find((message) => message.stream === "stderr");
    assert.ok(warning !== undefined);
    assert.equal(warning.context.taskId, "task-a2");
    assert.match(text(warning), /^shoal: logs of task task-a2 are incomplete: node node-2 is not connected/);
  });

  test("a worker that detaches mid-request ends its part with a warning instead of hanging the request", async () => {
    const broker = newBroker();
    const one = attach(broker, "node-1");
    const result = collect(broker.logs({ kind: "task", taskId: "task-a1" }, options(new AbortController().signal)));
    await new Promise((resolve) => setImmediate(resolve));
    await broker.publish("node-1", openId(one.events), [line("task-a1", "before")]);
    one.detach();
    const lines = await result;
    assert.deepEqual(lines.map(text)[0], "before\n");
    assert.match(text(lines[1] ?? line("", "")), /disconnected from the leader/);
  });

  test("a worker's error is reported in the stream as a stderr line of its tasks", async () => {
    const broker = newBroker();
    const one = attach(broker, "node-1");
    const result = collect(broker.logs({ kind: "task", taskId: "task-a1" }, options(new AbortController().signal)));
    await new Promise((resolve) => setImmediate(resolve));
    broker.finish("node-1", openId(one.events), "task task-a1: log file unreadable");
    const lines = await result;
    assert.equal(lines.length, 1);
    assert.match(text(lines[0] ?? line("", "")), /incomplete: task task-a1: log file unreadable/);
  });

  test("publishing another node's task or to an ended subscription is refused", async () => {
    const broker = newBroker();
    const one = attach(broker, "node-1");
    attach(broker, "node-2");
    const abort = new AbortController();
    const { iterator } = await start(broker.logs({ kind: "service", serviceId: "svc-a" }, options(abort.signal, true)));
    const id = openId(one.events);
    await assert.rejects(broker.publish("node-1", id, [line("task-a2", "not mine")]), PermissionDeniedError);
    await assert.rejects(broker.publish("node-3", id, [line("task-a1", "not addressed")]), PermissionDeniedError);
    abort.abort();
    await iterator.return?.();
    await assert.rejects(broker.publish("node-1", id, [line("task-a1", "late")]), NotFoundError);
  });

  test("the client going away ends a follow request and tells the workers still reading to close", async () => {
    const broker = newBroker();
    const one = attach(broker, "node-1");
    const two = attach(broker, "node-2");
    const abort = new AbortController();
    const { first } = await start(broker.logs({ kind: "service", serviceId: "svc-a" }, options(abort.signal, true)));
    const id = openId(one.events);
    broker.finish("node-2", id, null);
    await broker.publish("node-1", id, [line("task-a1", "live")]);
    assert.equal(text(await lineOf(first)), "live\n");
    abort.abort();
    assert.deepEqual(one.events.at(-1), { type: "close", subscriptionId: id });
    assert.equal(two.events.filter((event) => event.type === "close").length, 0, "a node that finished gets no close");
    assert.equal(broker.subscriptionCount, 0);
  });

  test("a full queue holds publishers back until the client reads (backpressure, nothing dropped)", async () => {
    const broker = newBroker();
    const one = attach(broker, "node-1");
    const { iterator, first } = await start(broker.logs({ kind: "task", taskId: "task-a1" }, options(new AbortController().signal)));
    const id = openId(one.events);
    const batch = Array.from({ length: 64 }, (_, index) => line("task-a1", `l${index}`));
    const batches = subscriptionQueueLinesMax / batch.length + 3;
    let published = 0;
    const publishing = (async () => {
      for (let index = 0; index < batches; index += 1) {
        await broker.publish("node-1", id, batch);
        published += 1;
      }
    })();
    await new Promise((resolve) => setImmediate(resolve));
    await first;
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.ok(published < batches, `all ${batches} batches were taken without the client reading`);
    let read = 1;
    while (published < batches) {
      await iterator.next();
      read += 1;
      await new Promise((resolve) => setImmediate(resolve));
    }
    await publishing;
    broker.finish("node-1", id, null);
    for (let step = await iterator.next(); step.done !== true; step = await iterator.next()) read += 1;
    assert.equal(read, batches * batch.length);
  });

  test("following a service picks up its new tasks (scale-up, restarts) and outlives the streams of finished tasks", async (t) => {
    const clock = new FakeClock();
    const broker = newBroker(clock);
    const one = attach(broker, "node-1");
    const two = attach(broker, "node-2");
    const abort = new AbortController();
    t.after(() => abort.abort());
    const { iterator, first } = await start(broker.logs({ kind: "service", serviceId: "svc-b" }, { ...options(abort.signal, true), tail: 5 }));
    const id = openId(one.events);
    broker.finish("node-1", id, null);
    tasks.push({ taskId: "task-b2", serviceId: "svc-b", nodeId: "node-2" });
    t.after(() => void tasks.pop());
    clock.advance(followRescanMs);
    assert.deepEqual(two.events.at(-1), { type: "open", subscriptionId: id, taskIds: ["task-b2"], options: { follow: true, stdout: true, stderr: true } });
    await broker.publish("node-2", id, [line("task-b2", "from the new task")]);
    assert.equal(text(await lineOf(first)), "from the new task\n");
    broker.finish("node-2", id, null);
    clock.advance(followRescanMs);
    assert.equal(one.events.filter((event) => event.type === "open").length, 1, "a known task is not asked for again");
    const next = iterator.next();
    abort.abort();
    assert.equal((await next).done, true);
  });
});
