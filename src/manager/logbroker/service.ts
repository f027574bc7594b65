import { once } from "node:events";

import { Metadata, status as grpcStatus, type ServerReadableStream, type ServerWritableStream, type ServiceError } from "@grpc/grpc-js";

import { InvalidArgumentError, NotFoundError, PermissionDeniedError, UnavailableError, errorMessage, isShoalError } from "../../common/errors.js";
import type { Logger } from "../../common/logger.js";
import type { ProtoGrpcType as LogBrokerProto } from "../../gen/logbroker.js";
import type { ListenSubscriptionsRequest__Output } from "../../gen/shoal/v1/ListenSubscriptionsRequest.js";
import type { LogBrokerHandlers } from "../../gen/shoal/v1/LogBroker.js";
import type { PublishLogsMessage__Output } from "../../gen/shoal/v1/PublishLogsMessage.js";
import type { PublishLogsResponse } from "../../gen/shoal/v1/PublishLogsResponse.js";
import type { SubscribeLogsMessage } from "../../gen/shoal/v1/SubscribeLogsMessage.js";
import type { SubscribeLogsRequest__Output } from "../../gen/shoal/v1/SubscribeLogsRequest.js";
import type { SubscriptionMessage } from "../../gen/shoal/v1/SubscriptionMessage.js";
import { loadProto } from "../../rpc/proto.js";
import type { GrpcService } from "../../rpc/server.js";
import type { AuthenticatedCall, NodeIdentity } from "../../rpc/tls/index.js";
import { leaderAddressMetadataKey } from "../dispatcher/index.js";
import type { ServiceLogMessage } from "../../api/docker-swarm/index.js";
import type { LogMessage } from "../../gen/shoal/v1/LogMessage.js";
import type { LogBroker, SubscriptionEvent } from "./broker.js";
import { parseWireLogMessage, parseWireOptions, parseWireSelector, toWireLogMessage, toWireOptions } from "./wire.js";

/** Lines per SubscribeLogs message. */
export const relayBatchLinesMax = 128;

export interface LogBrokerServiceOptions {
  broker: LogBroker;
  /** The caller's verified identity; throws UnauthenticatedError. */
  authenticate: (call: AuthenticatedCall) => NodeIdentity;
  isLeader: () => boolean;
  leaderAddress: () => string | undefined;
  logger: Logger;
}

function toWireEvent(event: SubscriptionEvent): SubscriptionMessage {
  return event.type === "open"
    ? { id: event.subscriptionId, taskIds: event.taskIds, options: toWireOptions(event.options), close: false }
    : { id: event.subscriptionId, taskIds: [], close: true };
}

class LogBrokerService {
  readonly #options: LogBrokerServiceOptions;
  readonly #logger: Logger;

  constructor(options: LogBrokerServiceOptions) {
    this.#options = options;
    this.#logger = options.logger.child({ component: "logbroker-service" });
  }

  /** Refuses calls on a manager that does not lead (its store may lag; workers attach to the leader). */
  #requireLeader(call: AuthenticatedCall): NodeIdentity {
    const identity = this.#options.authenticate(call);
    if (!this.#options.isLeader()) throw new UnavailableError("this manager is not the leader: log requests are brokered by the leader");
    return identity;
  }

  toServiceError(error: unknown): Partial<ServiceError> {
    const message = errorMessage(error);
    if (error instanceof UnavailableError) {
      const metadata = new Metadata();
      const leader = this.#options.leaderAddress();
      if (leader !== undefined) metadata.set(leaderAddressMetadataKey, leader);
      return { code: grpcStatus.UNAVAILABLE, details: message, message, metadata };
    }
    if (isShoalError(error)) return { code: error.grpcStatus, details: message, message };
    this.#logger.error({ err: error }, "log broker call failed unexpectedly");
    return { code: grpcStatus.INTERNAL, details: `internal error: ${message}`, message };
  }

  listenSubscriptions(call: ServerWritableStream<ListenSubscriptionsRequest__Output, SubscriptionMessage>): void {
    let identity: NodeIdentity;
    try {
      identity = this.#requireLeader(call);
    } catch (error) {
      call.emit("error", this.toServiceError(error));
      return;
    }
    // Subscription messages are small and bounded by subscriptionsMax, so they are written without waiting for drain.
    const detach = this.#options.broker.attachWorker(identity.nodeId, (event) => {
      if (!call.writableEnded) call.write(toWireEvent(event));
    });
    this.#logger.debug({ nodeId: identity.nodeId }, "worker listens for log subscriptions");
    call.on("cancelled", detach);
    call.on("close", detach);
    call.on("error", detach);
  }

  publishLogs(call: ServerReadableStream<PublishLogsMessage__Output, PublishLogsResponse>, callback: (error: Partial<ServiceError> | null, value?: PublishLogsResponse) => void): void {
    let identity: NodeIdentity;
    try {
      identity = this.#requireLeader(call);
    } catch (error) {
      callback(this.toServiceError(error));
      return;
    }
    const { broker } = this.#options;
    let subscriptionId: string | null = null;
    let closed = false;
    let answered = false;
    const answer = (error: unknown): void => {
      if (answered) return;
      answered = true;
      if (!closed && subscriptionId !== null) broker.finish(identity.nodeId, subscriptionId, `the log stream from node ${identity.nodeId} broke: ${errorMessage(error ?? "it ended early")}`);
      callback(error === null ? null : this.toServiceError(error), error === null ? {} : undefined);
    };
    const onMessage = async (message: PublishLogsMessage__Output): Promise<void> => {
      if (subscriptionId !== null && message.subscriptionId !== subscriptionId) throw new InvalidArgumentError("one PublishLogs stream carries one subscription");
      subscriptionId = message.subscriptionId;
      const lines = message.messages.map((line, index) => parseWireLogMessage(line, `messages[${index}]`));
      if (lines.some((line) => line.context.nodeId !== identity.nodeId)) throw new PermissionDeniedError(`node ${identity.nodeId} may only publish its own tasks' logs`);
      if (lines.length > 0) await broker.publish(identity.nodeId, message.subscriptionId, lines);
      if (message.close) {
        closed = true;
        broker.finish(identity.nodeId, message.subscriptionId, message.error === "" ? null : message.error);
      }
    };
    call.on("data", (message: PublishLogsMessage__Output) => {
      // Paused until the broker's queue takes the lines: gRPC flow control then holds the worker back.
      call.pause();
      onMessage(message).then(
        () => call.resume(),
        (error: unknown) => {
          // NotFoundError: the request ended; the worker stops on the close event it gets too.
          answer(error instanceof NotFoundError ? null : error);
          call.destroy();
        },
      );
    });
    call.on("end", () => answer(closed ? null : new UnavailableError("the worker ended its log stream without closing the subscription")));
    call.on("cancelled", () => answer(new UnavailableError("the worker cancelled its log stream")));
    call.on("error", (error: unknown) => answer(error));
  }

  async subscribeLogs(call: ServerWritableStream<SubscribeLogsRequest__Output, SubscribeLogsMessage>): Promise<void> {
    const abort = new AbortController();
    const onCancel = (): void => abort.abort();
    call.on("cancelled", onCancel);
    call.on("close", onCancel);
    try {
      const identity = this.#requireLeader(call);
      if (identity.role !== "manager") throw new PermissionDeniedError(`node ${identity.nodeId} is a ${identity.role}; SubscribeLogs is for manager nodes`);
      const selector = parseWireSelector(call.request.selector, "selector");
      const options = parseWireOptions(call.request.options, "options");
      await relayBatches(this.#options.broker.logs(selector, { ...options, signal: abort.signal }), async (messages) => {
        if (!call.write({ messages })) await once(call, "drain", { signal: abort.signal });
      });
      call.end();
    } catch (error) {
      if (!abort.signal.aborted && !call.writableEnded) call.emit("error", this.toServiceError(error));
    } finally {
      call.off("cancelled", onCancel);
      call.off("close", onCancel);
      abort.abort();
    }
  }
}

function nextTurn(): Promise<null> {
  return new Promise((resolve) => setImmediate(() => resolve(null)));
}

/**
 * Sends the lines in messages of up to relayBatchLinesMax: lines that are already queued
 * go together, and a batch goes out as soon as no more line is ready within this turn of
 * the event loop, so a followed line is not held back.
 */
async function relayBatches(lines: AsyncIterable<ServiceLogMessage>, send: (messages: LogMessage[]) => Promise<void>): Promise<void> {
  const iterator = lines[Symbol.asyncIterator]();
  try {
    let batch: LogMessage[] = [];
    let next = iterator.next();
    for (;;) {
      const step = batch.length === 0 ? await next : await Promise.race([next, nextTurn()]);
      if (step === null || batch.length >= relayBatchLinesMax) {
        await send(batch);
        batch = [];
        if (step === null) continue;
      }
      if (step.done === true) break;
      batch.push(toWireLogMessage(step.value));
      next = iterator.next();
    }
    if (batch.length > 0) await send(batch);
  } finally {
    await iterator.return?.();
  }
}

/** The LogBroker gRPC service a manager serves next to its dispatcher. */
export function createLogBrokerService(options: LogBrokerServiceOptions): GrpcService {
  const service = new LogBrokerService(options);
  const proto = loadProto<LogBrokerProto>("shoal/v1/logbroker.proto");
  const handlers: LogBrokerHandlers = {
    ListenSubscriptions: (call) => service.listenSubscriptions(call),
    PublishLogs: (call, callback) => service.publishLogs(call, callback),
    SubscribeLogs: (call) => {
      void service.subscribeLogs(call);
    },
  };
  return { definition: proto.shoal.v1.LogBroker.service, handlers };
}
