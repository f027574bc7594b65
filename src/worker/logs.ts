import { once } from "node:events";

import { credentials as grpcCredentials, Metadata, type ChannelCredentials, type ClientWritableStream } from "@grpc/grpc-js";

import { systemClock, type Clock } from "../common/clock.js";
import { FailedPreconditionError, errorMessage } from "../common/errors.js";
import type { Logger } from "../common/logger.js";
import type { ContainerService } from "../engine/runtime/containers.js";
import type { LogEntry } from "../engine/runtime/logs.js";
import type { ProtoGrpcType as LogBrokerProto } from "../gen/logbroker.js";
import type { LogBrokerClient } from "../gen/shoal/v1/LogBroker.js";
import type { LogMessage } from "../gen/shoal/v1/LogMessage.js";
import type { PublishLogsMessage } from "../gen/shoal/v1/PublishLogsMessage.js";
import type { SubscriptionMessage__Output } from "../gen/shoal/v1/SubscriptionMessage.js";
import { parseWireOptions, type WorkerLogOptions } from "../manager/logbroker/index.js";
import { loadProto } from "../rpc/proto.js";
import { grpcMessageSizeBytesMax } from "../rpc/server.js";

/** Log subscriptions one worker serves at once; more are answered with an error. */
export const workerSubscriptionsMax = 64;
/** Tasks one subscription may name on one node. */
export const workerSubscriptionTasksMax = 1_000;
/** Bytes of one line per message; longer lines go out in pieces. */
export const publishChunkBytesMax = 256 * 1024;
/** Lines per PublishLogs message (below the broker's publishLinesMax). */
export const publishBatchLinesMax = 128;
/** A batch is sent once it holds this many bytes, so a message stays well below gRPC's limit. */
export const publishBatchBytesMax = 256 * 1024;
/** Wait between attempts to listen for subscriptions (no session yet, or the stream broke). */
export const listenRetryMs = 500;
/** How often the listener checks that it still talks to the manager of the agent's session. */
export const listenSessionCheckMs = 1_000;

const taskLabel = "com.docker.swarm.task.id";
const serviceLabel = "com.docker.swarm.service.id";

/** The engine's containers, as the log publisher reads them (the engine's ContainerService fits). */
export interface WorkerLogContainers {
  list(options: { all: boolean }): ReadonlyArray<{ readonly record: { readonly id: string; readonly labels: Readonly<Record<string, string>> }; readonly removing: boolean }>;
  logs: ContainerService["logs"];
}

export interface LogPublisherOptions {
  containers: WorkerLogContainers;
  /** The leader the agent's session runs with, and this node's id; null between sessions. */
  session: () => { address: string; nodeId: string } | null;
  logger: Logger;
  channelCredentials?: ChannelCredentials;
  callMetadata?: Readonly<Record<string, string>>;
  clock?: Clock;
}

/**
 * The worker's half of the log broker: keeps a ListenSubscriptions stream open to the
 * manager its agent has a session with, and for each subscription reads the named tasks'
 * container logs from the engine (finished tasks too, while their containers exist) and
 * streams them back with PublishLogs, waiting whenever gRPC says the leader is not reading.
 */
export interface LogPublisher {
  start(): void;
  /** Stops listening and every subscription. */
  stop(): Promise<void>;
}

interface Served {
  subscriptionId: string;
  abort: AbortController;
  done: Promise<void>;
}

class LogPublisherImpl implements LogPublisher {
  readonly #options: LogPublisherOptions;
  readonly #logger: Logger;
  readonly #clock: Clock;
  readonly #proto: LogBrokerProto;
  readonly #metadata = new Metadata();
  /** One entry per open message: a followed service's subscription opens again for its new tasks. */
  readonly #served = new Set<Served>();
  #stop: AbortController | null = null;
  #loop: Promise<void> | null = null;

  constructor(options: LogPublisherOptions) {
    this.#options = options;
    this.#logger = options.logger.child({ component: "log-publisher" });
    this.#clock = options.clock ?? systemClock;
    this.#proto = loadProto<LogBrokerProto>("shoal/v1/logbroker.proto");
    for (const [key, value] of Object.entries(options.callMetadata ?? {})) this.#metadata.set(key, value);
  }

  start(): void {
    if (this.#stop !== null) throw new FailedPreconditionError("the log publisher is already started");
    this.#stop = new AbortController();
    this.#loop = this.#listenLoop(this.#stop.signal);
  }

  async stop(): Promise<void> {
    const stop = this.#stop;
    if (stop === null) return;
    stop.abort();
    await this.#loop;
    for (const served of this.#served) served.abort.abort();
    await Promise.all([...this.#served.values()].map((served) => served.done));
    this.#stop = null;
  }

  async #listenLoop(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      const session = this.#options.session();
      if (session !== null) {
        const client = new this.#proto.shoal.v1.LogBroker(session.address, this.#options.channelCredentials ?? grpcCredentials.createInsecure(), {
          "grpc.max_receive_message_length": grpcMessageSizeBytesMax,
          "grpc.max_send_message_length": grpcMessageSizeBytesMax,
        });
        try {
          await this.#listen(client, session, signal);
        } catch (error) {
          if (!signal.aborted) this.#logger.debug({ address: session.address, err: errorMessage(error) }, "log subscription stream ended; listening again");
        } finally {
          // Subscriptions in flight keep their own PublishLogs calls on the channel; close it after them.
          const inFlight = [...this.#served.values()].map((served) => served.done);
          void Promise.all(inFlight).then(() => client.close());
        }
      }
      await this.#clock.sleep(listenRetryMs, { signal }).catch(() => undefined);
    }
  }

  /** Resolves when the stream ends, the agent's session moved to another manager, or `signal` fires. */
  #listen(client: LogBrokerClient, session: { address: string; nodeId: string }, signal: AbortSignal): Promise<void> {
    const call = client.ListenSubscriptions({}, this.#metadata);
    return new Promise<void>((resolve, reject) => {
      let cancelTimer = (): void => {};
      const finish = (error: unknown): void => {
        cancelTimer();
        signal.removeEventListener("abort", onAbort);
        call.cancel();
        call.on("error", () => undefined);
        if (error === null) resolve();
        else reject(error instanceof Error ? error : new Error(errorMessage(error)));
      };
      const onAbort = (): void => finish(null);
      const check = (): void => {
        if (this.#options.session()?.address !== session.address) finish(null);
        else cancelTimer = this.#clock.setTimer(listenSessionCheckMs, check);
      };
      cancelTimer = this.#clock.setTimer(listenSessionCheckMs, check);
      signal.addEventListener("abort", onAbort, { once: true });
      call.on("data", (message: SubscriptionMessage__Output) => this.#onSubscription(client, session.nodeId, message));
      call.on("error", (error) => finish(error));
      call.on("end", () => finish(null));
    });
  }

  #onSubscription(client: LogBrokerClient, nodeId: string, message: SubscriptionMessage__Output): void {
    if (message.close) {
      for (const served of this.#served) if (served.subscriptionId === message.id) served.abort.abort();
      return;
    }
    let options: WorkerLogOptions;
    let refusal: string | null = null;
    try {
      options = parseWireOptions(message.options, "options");
    } catch (error) {
      options = { follow: false, stdout: true, stderr: true };
      refusal = errorMessage(error);
    }
    if (this.#served.size >= workerSubscriptionsMax) refusal = `node ${nodeId} already serves ${workerSubscriptionsMax} log requests; try again later`;
    if (message.taskIds.length > workerSubscriptionTasksMax) refusal = `a log request may name at most ${workerSubscriptionTasksMax} tasks of one node`;
    const abort = new AbortController();
    const served: Served = { subscriptionId: message.id, abort, done: Promise.resolve() };
    this.#served.add(served);
    served.done = this.#serve({ client, nodeId, subscriptionId: message.id, taskIds: refusal === null ? message.taskIds : [], options, refusal, abort })
      .catch((error: unknown) => this.#logger.debug({ subscriptionId: message.id, err: errorMessage(error) }, "log subscription ended early"))
      .finally(() => this.#served.delete(served));
  }

  async #serve(request: { client: LogBrokerClient; nodeId: string; subscriptionId: string; taskIds: readonly string[]; options: WorkerLogOptions; refusal: string | null; abort: AbortController }): Promise<void> {
    const { subscriptionId, abort } = request;
    const signal = abort.signal;
    let answered: (error: Error | null) => void = () => undefined;
    const answer = new Promise<Error | null>((resolve) => {
      answered = resolve;
    });
    const call = request.client.PublishLogs(this.#metadata, (error) => answered(error));
    // The leader cuts the stream when its client went away: stop reading then.
    call.on("error", () => abort.abort());
    const containers = this.#options.containers.list({ all: true });
    const failures: string[] = request.refusal === null ? [] : [request.refusal];
    const batcher = new LineBatcher(call, subscriptionId, signal);
    await Promise.all(
      request.taskIds.map(async (taskId) => {
        const container = containers.find((info) => !info.removing && info.record.labels[taskLabel] === taskId);
        // A task whose container is gone (removed, or never created) simply has no logs, as in docker.
        if (container === undefined) return;
        const context = { taskId, serviceId: container.record.labels[serviceLabel] ?? "", nodeId: request.nodeId };
        try {
          for await (const entry of this.#options.containers.logs(container.record.id, { ...request.options, signal })) {
            if (!(await batcher.add(toWireLines(entry, context)))) return;
          }
        } catch (error) {
          if (!signal.aborted) failures.push(`task ${taskId}: ${errorMessage(error)}`);
        }
      }),
    );
    await batcher.flush();
    batcher.close();
    if (!call.writableEnded && !call.destroyed) call.end({ subscriptionId, messages: [], close: true, error: failures.join("; ") });
    const error = await answer;
    if (error !== null && !signal.aborted) this.#logger.debug({ subscriptionId, err: errorMessage(error) }, "the leader ended a log stream");
  }
}

function toWireLines(entry: LogEntry, context: { taskId: string; serviceId: string; nodeId: string }): LogMessage[] {
  const data = Buffer.from(entry.text);
  const lines: LogMessage[] = [];
  for (let offset = 0; offset < data.length || lines.length === 0; offset += publishChunkBytesMax) {
    lines.push({
      ...context,
      stream: entry.stream === "stderr" ? "LOG_STREAM_STDERR" : "LOG_STREAM_STDOUT",
      timestampMs: entry.timeMs,
      data: data.subarray(offset, offset + publishChunkBytesMax),
    });
  }
  return lines;
}

/**
 * Gathers the lines the readers of one subscription produce into PublishLogs messages: a
 * batch goes out when full, or once the readers have nothing more ready (setImmediate runs
 * after the reads in progress), so a followed line waits no longer than one turn of the
 * event loop. While gRPC's buffer is full, add() waits for it to drain.
 */
class LineBatcher {
  readonly #call: ClientWritableStream<PublishLogsMessage>;
  readonly #subscriptionId: string;
  readonly #signal: AbortSignal;
  #lines: LogMessage[] = [];
  #bytes = 0;
  #scheduled: NodeJS.Immediate | null = null;
  #draining: Promise<boolean> | null = null;

  constructor(call: ClientWritableStream<PublishLogsMessage>, subscriptionId: string, signal: AbortSignal) {
    this.#call = call;
    this.#subscriptionId = subscriptionId;
    this.#signal = signal;
  }

  /** Queues lines; false once the stream is closed or the subscription cancelled (stop reading). */
  async add(lines: readonly LogMessage[]): Promise<boolean> {
    if (this.#draining !== null && !(await this.#draining)) return false;
    if (!this.#open()) return false;
    for (const line of lines) {
      this.#lines.push(line);
      this.#bytes += line.data instanceof Uint8Array ? line.data.length : 0;
    }
    if (this.#lines.length >= publishBatchLinesMax || this.#bytes >= publishBatchBytesMax) return this.flush();
    this.#scheduled ??= setImmediate(() => {
      this.#scheduled = null;
      void this.flush();
    });
    return true;
  }

  /** Sends what is queued; resolves false when the stream is closed. */
  async flush(): Promise<boolean> {
    if (this.#scheduled !== null) clearImmediate(this.#scheduled);
    this.#scheduled = null;
    if (this.#draining !== null && !(await this.#draining)) return false;
    if (!this.#open()) return false;
    if (this.#lines.length === 0) return true;
    const messages = this.#lines;
    this.#lines = [];
    this.#bytes = 0;
    if (this.#call.write({ subscriptionId: this.#subscriptionId, messages, close: false })) return true;
    this.#draining = once(this.#call, "drain", { signal: this.#signal }).then(
      () => true,
      () => false,
    );
    const drained = await this.#draining;
    this.#draining = null;
    return drained;
  }

  close(): void {
    if (this.#scheduled !== null) clearImmediate(this.#scheduled);
    this.#scheduled = null;
  }

  #open(): boolean {
    return !this.#signal.aborted && !this.#call.writableEnded && !this.#call.destroyed;
  }
}

export function createLogPublisher(options: LogPublisherOptions): LogPublisher {
  return new LogPublisherImpl(options);
}
