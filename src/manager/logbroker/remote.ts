import { Metadata, status as grpcStatus, type ChannelCredentials, type ClientReadableStream, type ServiceError } from "@grpc/grpc-js";

import { CancelledError, InvalidArgumentError, NotFoundError, PermissionDeniedError, ResourceExhaustedError, UnavailableError } from "../../common/errors.js";
import type { LogSelector, ServiceLogMessage, ServiceLogOptions, ServiceLogSource } from "../../api/docker-swarm/index.js";
import type { ProtoGrpcType as LogBrokerProto } from "../../gen/logbroker.js";
import type { SubscribeLogsMessage__Output } from "../../gen/shoal/v1/SubscribeLogsMessage.js";
import { loadProto } from "../../rpc/proto.js";
import { grpcMessageSizeBytesMax } from "../../rpc/server.js";
import { tlsChannelOptions } from "../../rpc/tls/index.js";
import { parseWireLogMessage, toWireOptions, toWireSelector } from "./wire.js";

/**
 * Lines a follower buffers from the leader before it pauses the leader's stream (gRPC flow
 * control then holds the leader, and through it the workers, back).
 */
export const relayQueueLinesMax = 512;

export interface LeaderLogSourceOptions {
  /** The leader's "host:port", undefined while none is known. */
  leaderAddress: () => string | undefined;
  credentials: () => ChannelCredentials;
}

function isServiceError(error: unknown): error is ServiceError {
  return error instanceof Error && "code" in error && typeof error.code === "number" && "details" in error;
}

function toShoalError(error: unknown): Error {
  if (!isServiceError(error)) return error instanceof Error ? error : new UnavailableError(String(error));
  const message = `the leader refused the log request: ${error.details || error.message}`;
  switch (error.code) {
    case grpcStatus.NOT_FOUND:
      return new NotFoundError(message, { cause: error });
    case grpcStatus.INVALID_ARGUMENT:
      return new InvalidArgumentError(message, { cause: error });
    case grpcStatus.PERMISSION_DENIED:
      return new PermissionDeniedError(message, { cause: error });
    case grpcStatus.RESOURCE_EXHAUSTED:
      return new ResourceExhaustedError(message, { cause: error });
    default:
      return new UnavailableError(message, { cause: error });
  }
}

/**
 * A follower manager's log source: the leader's SubscribeLogs, relayed. Streaming does not
 * fit the forwarding of REST requests (fastify inject buffers the whole answer), so the
 * follower subscribes to the leader's broker over the managers' mTLS gRPC instead.
 */
export function createLeaderLogSource(options: LeaderLogSourceOptions): ServiceLogSource {
  const proto = loadProto<LogBrokerProto>("shoal/v1/logbroker.proto");
  return {
    async *logs(selector: LogSelector, logOptions: ServiceLogOptions): AsyncGenerator<ServiceLogMessage> {
      if (logOptions.signal.aborted) throw new CancelledError("the log request was cancelled");
      const address = options.leaderAddress();
      if (address === undefined) throw new UnavailableError("the swarm has no leader right now (election or lost quorum); logs are brokered by the leader: try again");
      const client = new proto.shoal.v1.LogBroker(address, options.credentials(), { ...tlsChannelOptions, "grpc.max_receive_message_length": grpcMessageSizeBytesMax });
      const call = client.SubscribeLogs({ selector: toWireSelector(selector), options: toWireOptions(logOptions) }, new Metadata());
      try {
        yield* relay(call, logOptions.signal);
      } finally {
        call.cancel();
        call.on("error", () => undefined);
        client.close();
      }
    },
  };
}

async function* relay(call: ClientReadableStream<SubscribeLogsMessage__Output>, signal: AbortSignal): AsyncGenerator<ServiceLogMessage> {
  const queue: ServiceLogMessage[] = [];
  let ended = false;
  let failure: unknown = null;
  let wake: (() => void) | null = null;
  const notify = (): void => {
    const resolve = wake;
    wake = null;
    resolve?.();
  };
  call.on("data", (message: SubscribeLogsMessage__Output) => {
    try {
      queue.push(...message.messages.map((line, index) => parseWireLogMessage(line, `messages[${index}]`)));
    } catch (error) {
      failure = error;
      call.cancel();
    }
    if (queue.length >= relayQueueLinesMax) call.pause();
    notify();
  });
  call.on("end", () => {
    ended = true;
    notify();
  });
  call.on("error", (error) => {
    failure ??= error;
    ended = true;
    notify();
  });
  signal.addEventListener("abort", notify, { once: true });
  try {
    for (;;) {
      const line = queue.shift();
      if (line !== undefined) {
        if (queue.length < relayQueueLinesMax / 2) call.resume();
        yield line;
        continue;
      }
      if (failure !== null) throw toShoalError(failure);
      if (ended || signal.aborted) return;
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
    }
  } finally {
    signal.removeEventListener("abort", notify);
  }
}
