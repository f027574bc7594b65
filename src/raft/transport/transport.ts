import assert from "node:assert/strict";

import { Client, credentials as grpcCredentials, Metadata, status as grpcStatus } from "@grpc/grpc-js";
import type {
  ChannelCredentials,
  ClientWritableStream,
  handleClientStreamingCall,
  ServerCredentials,
  ServerReadableStream,
  ServiceError,
} from "@grpc/grpc-js";

import type { Clock } from "../../common/clock.js";
import {
  CancelledError,
  errorMessage,
  InvalidArgumentError,
  isShoalError,
  PermissionDeniedError,
  UnavailableError,
} from "../../common/errors.js";
import type { ShoalError } from "../../common/errors.js";
import type { Logger } from "../../common/logger.js";
import type { RaftDefinition, RaftHandlers } from "../../gen/shoal/v1/Raft.js";
import type { RaftMessage__Output } from "../../gen/shoal/v1/RaftMessage.js";
import type { RaftSnapshotAck__Output } from "../../gen/shoal/v1/RaftSnapshotAck.js";
import type { RaftSnapshotChunk, RaftSnapshotChunk__Output } from "../../gen/shoal/v1/RaftSnapshotChunk.js";
import type { RaftStreamSummary, RaftStreamSummary__Output } from "../../gen/shoal/v1/RaftStreamSummary.js";
import type { ProtoGrpcType as RaftProto } from "../../gen/raft.js";
import { loadProto } from "../../rpc/proto.js";
import { grpcKeepalive, grpcMessageSizeBytesMax, startGrpcServer } from "../../rpc/server.js";
import type { GrpcServer, GrpcService } from "../../rpc/server.js";
import type { Message, NodeId, SnapshotMetadata } from "../core/types.js";
import { decodeMessageBatch, encodeMessageBatch } from "./batch-codec.js";
import type { MessageBatch } from "./batch-codec.js";
import { messageFromWire, messageSizeBytesEstimate, messageToWire } from "./message-codec.js";

/** Messages waiting for one peer; beyond this they are dropped and counted (raft resends). */
export const peerQueueMessagesMax = 4096;
/** A batch is cut below the gRPC limit, leaving room for framing. */
export const batchBytesMax = grpcMessageSizeBytesMax / 2;
export const snapshotChunkBytes = 1024 * 1024;
export const snapshotTransferBytesMax = 1024 * 1024 * 1024;
export const reconnectBackoffMsMin = 50;
export const reconnectBackoffMsMax = 1_000;

/** An inbound call as authorizePeer sees it: its peer address, metadata and TLS auth context. */
export type RaftPeerCall = ServerReadableStream<unknown, unknown>;

/** What the transport delivers to the local raft node. */
export interface RaftTransportHandler {
  /** A message from a peer, already validated and addressed to this node. */
  step(message: Message): void;
  /** Messages to `id` were lost because it could not be reached. */
  reportUnreachable(id: NodeId): void;
  /** A snapshot sent to `id` was installed ("finish") or its delivery failed. */
  reportSnapshot(id: NodeId, status: "finish" | "failure"): void;
}

export interface RaftTransportStats {
  readonly sentMessages: number;
  readonly receivedMessages: number;
  readonly droppedMessages: number;
  readonly snapshotsSent: number;
  readonly snapshotsFailed: number;
}

/**
 * Moves raft messages between managers over gRPC. One client stream per peer carries
 * batches; snapshots go through their own chunked call. Delivery is best effort, as raft
 * expects: on a broken stream or a full queue messages are dropped, counted and reported
 * unreachable, and the stream is reopened with exponential backoff. Each peer has at most
 * one inbound snapshot transfer: a newer one from the same peer replaces it.
 */
export interface RaftTransport {
  readonly id: NodeId;
  /**
   * Where inbound messages go; null drops them (e.g. before the node has started) and
   * refuses snapshot transfers with UNAVAILABLE, those under way included, so that their
   * senders report them failed and send them again later.
   */
  setHandler(handler: RaftTransportHandler | null): void;
  /** Adds or re-addresses a peer ("host:port"). */
  addPeer(id: NodeId, address: string): void;
  /** Ends the stream to the peer (what was sent still goes out); a snapshot being sent to it is cancelled and reported failed. */
  removePeer(id: NodeId): void;
  peers(): ReadonlyMap<NodeId, string>;
  /** Queues messages for their peers and starts writing them; never blocks, never throws for a peer's state. */
  send(messages: readonly Message[]): void;
  /** The service to register on a gRPC server (the daemon's, or one from listen()). */
  grpcService(): GrpcService;
  /** Starts a dedicated gRPC server for this transport; returns the bound "host:port". */
  listen(options: { host: string; port: number; credentials?: ServerCredentials }): Promise<string>;
  stats(): RaftTransportStats;
  /**
   * Cancels every outbound call, fails inbound snapshot transfers with UNAVAILABLE, ends
   * inbound streams, and stops reconnect timers and the server from listen(). Reports
   * nothing to the handler once it returns.
   */
  close(): Promise<void>;
}

export interface GrpcRaftTransportOptions {
  readonly id: NodeId;
  readonly logger: Logger;
  readonly clock: Clock;
  /** Credentials for calls to peers; insecure when absent (tests, loopback benchmarks). */
  readonly channelCredentials?: ChannelCredentials;
  /**
   * Binds an inbound call to the node id its credentials prove (e.g. from the client
   * certificate), or null to refuse the call. Without it the sender's claimed id is
   * trusted, which is only acceptable with insecure loopback setups.
   */
  readonly authorizePeer?: (call: RaftPeerCall) => NodeId | null;
  readonly peerQueueMessagesMax?: number;
}

interface PeerConnection {
  readonly id: NodeId;
  readonly address: string;
  readonly client: Client;
  stream: ClientWritableStream<MessageBatch> | null;
  queue: Message[];
  blocked: boolean;
  backoffMs: number;
  cancelRetry: (() => void) | null;
  /** The snapshot transfer under way; one per peer, raft sends the next after its report. */
  snapshot: ClientWritableStream<RaftSnapshotChunk> | null;
  closed: boolean;
}

type SnapshotCall = Parameters<RaftHandlers["SendSnapshot"]>[0];
type SnapshotCallback = Parameters<RaftHandlers["SendSnapshot"]>[1];

interface SnapshotHead {
  readonly message: Message;
  readonly snapshotMetadata: SnapshotMetadata;
  readonly totalBytes: number;
}

/** An inbound snapshot transfer under way; it buffers up to snapshotTransferBytesMax. */
interface InboundSnapshot {
  /** The sender, once the transfer's head has named it. */
  from: NodeId | null;
  /** Answers the call with `error` and drops the bytes received; a no-op once answered. */
  fail(error: unknown): void;
}

/** The batches' bytes reach the handler undecoded: batch-codec.ts parses them. */
function passBytes(bytes: Buffer): Buffer {
  return bytes;
}

function grpcError(code: number, details: string): Partial<ServiceError> {
  return { code, details, message: details };
}

class GrpcRaftTransport implements RaftTransport {
  readonly id: NodeId;
  readonly #logger: Logger;
  readonly #clock: Clock;
  readonly #channelCredentials: ChannelCredentials;
  readonly #authorizePeer: ((call: RaftPeerCall) => NodeId | null) | undefined;
  readonly #queueMax: number;
  readonly #service: RaftDefinition;
  readonly #peers = new Map<NodeId, PeerConnection>();
  readonly #inbound = new Set<() => void>();
  readonly #inboundSnapshots = new Set<InboundSnapshot>();
  #handler: RaftTransportHandler | null = null;
  #server: GrpcServer | null = null;
  #closed = false;
  #stats = { sentMessages: 0, receivedMessages: 0, droppedMessages: 0, snapshotsSent: 0, snapshotsFailed: 0 };

  constructor(options: GrpcRaftTransportOptions) {
    this.id = options.id;
    this.#logger = options.logger.child({ component: "raft-transport", node: options.id });
    this.#clock = options.clock;
    this.#channelCredentials = options.channelCredentials ?? grpcCredentials.createInsecure();
    this.#authorizePeer = options.authorizePeer;
    this.#queueMax = options.peerQueueMessagesMax ?? peerQueueMessagesMax;
    this.#service = loadProto<RaftProto>("shoal/v1/raft.proto").shoal.v1.Raft.service;
  }

  setHandler(handler: RaftTransportHandler | null): void {
    this.#handler = handler;
    // Acknowledged, a transfer that reaches no node would count as installed; refused, it is
    // sent again once the node runs.
    if (handler === null) {
      this.#failInboundSnapshots(new UnavailableError(`the raft node ${this.id} stopped during the snapshot transfer`));
    }
  }

  addPeer(id: NodeId, address: string): void {
    if (id === this.id) return;
    const existing = this.#peers.get(id);
    if (existing?.address === address) return;
    if (existing !== undefined) this.removePeer(id);
    const client = new Client(address, this.#channelCredentials, {
      "grpc.max_send_message_length": grpcMessageSizeBytesMax,
      "grpc.max_receive_message_length": grpcMessageSizeBytesMax,
      // A restarted peer must be found again within about an election timeout, not after
      // grpc's default reconnect backoff of up to two minutes.
      "grpc.initial_reconnect_backoff_ms": reconnectBackoffMsMin * 2,
      "grpc.max_reconnect_backoff_ms": reconnectBackoffMsMax,
      "grpc.keepalive_time_ms": grpcKeepalive.timeMs,
      "grpc.keepalive_timeout_ms": grpcKeepalive.timeoutMs,
      // Raft resends what a broken stream lost; grpc's own retry support only adds a copy
      // of every message to a replay buffer (measured: 10-20% of the CPU per message).
      "grpc.enable_retries": 0,
    });
    this.#peers.set(id, {
      id,
      address,
      client,
      stream: null,
      queue: [],
      blocked: false,
      backoffMs: reconnectBackoffMsMin,
      cancelRetry: null,
      snapshot: null,
      closed: false,
    });
  }

  removePeer(id: NodeId): void {
    const peer = this.#peers.get(id);
    if (peer === undefined) return;
    this.#peers.delete(id);
    this.#closePeer(peer, { flush: true });
  }

  /**
   * Stops the calls to `peer`. With `flush`, its stream is ended rather than cancelled, so
   * that messages already written still go out: a follower that installs a snapshot
   * answers it and then drops the members the snapshot does not list.
   */
  #closePeer(peer: PeerConnection, options: { flush: boolean }): void {
    peer.closed = true;
    peer.cancelRetry?.();
    peer.cancelRetry = null;
    this.#stats.droppedMessages += peer.queue.length;
    peer.queue = [];
    // Cancelled, not ended: Channel.close() fails only calls that have not started, and
    // end() only half-closes, so a transfer would run on holding the snapshot's bytes, and a
    // stream to a hung peer would linger until keepalive gives up on it. The transfer's
    // callback reports it failed (once close() has cleared the handler, to nobody).
    const stream = peer.stream;
    const snapshot = peer.snapshot;
    peer.stream = null;
    peer.snapshot = null;
    if (options.flush) stream?.end();
    else stream?.cancel();
    snapshot?.cancel();
    peer.client.close();
  }

  peers(): ReadonlyMap<NodeId, string> {
    return new Map([...this.#peers].map(([id, peer]) => [id, peer.address]));
  }

  send(messages: readonly Message[]): void {
    if (this.#closed) return;
    for (const message of messages) {
      const peer = this.#peers.get(message.to);
      if (peer === undefined) {
        this.#stats.droppedMessages += 1;
        this.#logger.debug({ to: message.to, type: message.type }, "dropping message to unknown peer");
        continue;
      }
      if (message.type === "snap") {
        this.#sendSnapshot(peer, message);
        continue;
      }
      if (peer.cancelRetry !== null) {
        // A stream in backoff: queuing would only deliver stale traffic late. Its end was
        // reported once; reporting every refused send would have a follower whose link to
        // a live leader is broken one way give up its lease on every acknowledgement.
        this.#stats.droppedMessages += 1;
        continue;
      }
      if (peer.queue.length >= this.#queueMax) {
        this.#stats.droppedMessages += 1;
        this.#handler?.reportUnreachable(peer.id);
        continue;
      }
      peer.queue.push(message);
    }
    // A queue left non-empty by an earlier send belongs to a blocked stream, which #flush
    // skips: flushing every peer with a queue is flushing the ones just queued to, without
    // a set of them per call.
    for (const peer of this.#peers.values()) if (peer.queue.length > 0) this.#flush(peer);
  }

  #flush(peer: PeerConnection): void {
    if (peer.closed || peer.blocked || peer.queue.length === 0) return;
    const stream = peer.stream ?? this.#openStream(peer);
    while (peer.queue.length > 0 && !peer.blocked) {
      let bytes = 0;
      let count = 0;
      for (const message of peer.queue) {
        const size = messageSizeBytesEstimate(message);
        if (count > 0 && bytes + size > batchBytesMax) break;
        bytes += size;
        count += 1;
      }
      const batch = peer.queue.splice(0, count);
      if (bytes > grpcMessageSizeBytesMax) {
        this.#stats.droppedMessages += 1;
        this.#logger.error({ to: peer.id, bytes }, "dropping a raft message larger than the gRPC message limit");
        continue;
      }
      this.#stats.sentMessages += batch.length;
      if (!stream.write({ from: this.id, messages: batch })) {
        peer.blocked = true;
        stream.once("drain", () => {
          peer.blocked = false;
          if (peer.stream === stream) this.#flush(peer);
        });
      }
    }
  }

  #openStream(peer: PeerConnection): ClientWritableStream<MessageBatch> {
    const method = this.#service.Stream;
    const stream = peer.client.makeClientStreamRequest<MessageBatch, RaftStreamSummary__Output>(
      method.path,
      encodeMessageBatch,
      method.responseDeserialize,
      (error) => {
        if (peer.stream === stream) this.#onStreamEnded(peer, error?.message);
      },
    );
    // The server sends headers as soon as it accepts the stream: the peer is reachable again.
    stream.on("metadata", () => {
      peer.backoffMs = reconnectBackoffMsMin;
    });
    stream.on("error", (error: Error) => {
      this.#logger.trace({ to: peer.id, error: error.message }, "stream error");
    });
    peer.stream = stream;
    return stream;
  }

  #onStreamEnded(peer: PeerConnection, error: string | undefined): void {
    peer.stream = null;
    peer.blocked = false;
    if (peer.closed || this.#closed) return;
    const lost = peer.queue.length;
    this.#stats.droppedMessages += lost;
    peer.queue = [];
    this.#logger.debug({ to: peer.id, error, lost }, "stream to peer ended");
    this.#handler?.reportUnreachable(peer.id);
    const delay = peer.backoffMs;
    peer.backoffMs = Math.min(peer.backoffMs * 2, reconnectBackoffMsMax);
    peer.cancelRetry = this.#clock.setTimer(delay, () => {
      peer.cancelRetry = null;
    });
  }

  #sendSnapshot(peer: PeerConnection, message: Message): void {
    const snapshot = message.snapshot;
    if (snapshot === null || peer.snapshot !== null) {
      // One snapshot per peer at a time; raft asks again after the failure report.
      this.#handler?.reportSnapshot(peer.id, "failure");
      return;
    }
    const method = this.#service.SendSnapshot;
    const call = peer.client.makeClientStreamRequest<RaftSnapshotChunk, RaftSnapshotAck__Output>(
      method.path,
      method.requestSerialize,
      method.responseDeserialize,
      (error) => {
        if (peer.snapshot === call) peer.snapshot = null;
        if (error !== null) {
          this.#stats.snapshotsFailed += 1;
          // close() cancelled it: the handler is gone, and a warning would only be noise.
          if (this.#closed) return;
          this.#logger.warn({ to: peer.id, error: error.message }, "snapshot transfer failed");
          this.#handler?.reportUnreachable(peer.id);
          this.#handler?.reportSnapshot(peer.id, "failure");
          return;
        }
        this.#stats.snapshotsSent += 1;
        this.#handler?.reportSnapshot(peer.id, "finish");
      },
    );
    call.on("error", (error: Error) => {
      this.#logger.trace({ to: peer.id, error: error.message }, "snapshot call error");
    });
    peer.snapshot = call;
    const chunks: RaftSnapshotChunk[] = [
      { head: { message: messageToWire(message, { includeSnapshotData: false }), totalBytes: snapshot.data.length } },
    ];
    for (let offset = 0; offset < snapshot.data.length; offset += snapshotChunkBytes) {
      chunks.push({ data: snapshot.data.subarray(offset, offset + snapshotChunkBytes) });
    }
    const writeFrom = (position: number): void => {
      for (let index = position; index < chunks.length; index += 1) {
        // #closePeer cancelled the transfer, or it failed.
        if (peer.snapshot !== call) return;
        const chunk = chunks[index];
        if (chunk !== undefined && !call.write(chunk)) {
          call.once("drain", () => writeFrom(index + 1));
          return;
        }
      }
      call.end();
    };
    writeFrom(0);
  }

  #authorize(call: RaftPeerCall): { ok: true; id: NodeId | null } | { ok: false } {
    if (this.#authorizePeer === undefined) return { ok: true, id: null };
    const id = this.#authorizePeer(call);
    return id === null ? { ok: false } : { ok: true, id };
  }

  /** Checks that a decoded message comes from the stream's sender and is addressed here. */
  #acceptMessage(message: Message, from: NodeId): Message {
    if (message.from !== from) {
      throw new PermissionDeniedError(`message claims sender ${message.from} on a stream from ${from}`);
    }
    if (message.to !== this.id) {
      throw new InvalidArgumentError(`message for node ${message.to} reached node ${this.id}`);
    }
    return message;
  }

  #senderOf(batchFrom: unknown, authorized: NodeId | null): NodeId {
    if (typeof batchFrom !== "number" || !Number.isSafeInteger(batchFrom) || batchFrom <= 0) {
      throw new InvalidArgumentError("raft batch has no valid sender id");
    }
    if (authorized !== null && authorized !== batchFrom) {
      throw new PermissionDeniedError(`peer authenticated as ${authorized} sent a batch as ${batchFrom}`);
    }
    return batchFrom;
  }

  #handlers(): { Stream: handleClientStreamingCall<Buffer, RaftStreamSummary>; SendSnapshot: RaftHandlers["SendSnapshot"] } {
    return {
      Stream: (call, callback) => {
        const authorization = this.#authorize(call);
        if (this.#closed || !authorization.ok) {
          const code = this.#closed ? grpcStatus.UNAVAILABLE : grpcStatus.PERMISSION_DENIED;
          callback(grpcError(code, this.#closed ? "raft transport is closed" : "peer is not a cluster member"));
          return;
        }
        call.sendMetadata(new Metadata());
        let received = 0;
        let done = false;
        const finish = (error: Partial<ServiceError> | null): void => {
          if (done) return;
          done = true;
          this.#inbound.delete(finishOk);
          callback(error, { messagesReceived: received });
        };
        const finishOk = (): void => finish(null);
        this.#inbound.add(finishOk);
        call.on("data", (bytes: Buffer) => {
          if (done) return;
          try {
            const batch = decodeMessageBatch(bytes);
            const from = this.#senderOf(batch.from, authorization.id);
            const messages = batch.messages.map((message) => this.#acceptMessage(message, from));
            received += messages.length;
            this.#stats.receivedMessages += messages.length;
            const handler = this.#handler;
            if (handler !== null) for (const message of messages) handler.step(message);
          } catch (error) {
            this.#logger.warn({ error: errorMessage(error) }, "refusing raft batch");
            const code = isShoalError(error) ? error.grpcStatus : grpcStatus.INTERNAL;
            finish(grpcError(code, errorMessage(error)));
          }
        });
        call.on("end", finishOk);
        const forget = (): void => {
          this.#inbound.delete(finishOk);
          done = true;
        };
        // Peers cancel their streams when they close or drop this node. Such a call sees
        // "end" only if grpc-js had nothing queued for it, and no "error"; "cancelled" it does.
        call.on("cancelled", forget);
        call.on("error", (error: Error) => {
          this.#logger.trace({ error: error.message }, "inbound stream error");
          forget();
        });
      },
      SendSnapshot: (call, callback) => {
        this.#receiveSnapshot(call, callback);
      },
    };
  }

  #receiveSnapshot(call: SnapshotCall, callback: SnapshotCallback): void {
    const authorization = this.#authorize(call);
    const refusal = this.#snapshotRefusal(authorization.ok);
    if (refusal !== null) {
      callback(grpcError(refusal.grpcStatus, refusal.message));
      return;
    }
    const authorized = authorization.ok ? authorization.id : null;
    let head: SnapshotHead | null = null;
    let chunks: Buffer[] = [];
    let received = 0;
    const transfer: InboundSnapshot = {
      from: null,
      fail: (error) => {
        if (!this.#inboundSnapshots.delete(transfer)) return;
        chunks = [];
        this.#logger.warn({ from: transfer.from, error: errorMessage(error) }, "refusing snapshot transfer");
        const code = isShoalError(error) ? error.grpcStatus : grpcStatus.INTERNAL;
        callback(grpcError(code, errorMessage(error)));
      },
    };
    this.#inboundSnapshots.add(transfer);
    call.on("data", (chunk: RaftSnapshotChunk__Output) => {
      if (!this.#inboundSnapshots.has(transfer)) return;
      try {
        if (chunk.part === "head" && head === null && chunk.head?.message != null) {
          head = this.#acceptSnapshotHead(transfer, chunk.head.message, chunk.head.totalBytes, authorized);
        } else if (chunk.part === "data" && head !== null && chunk.data !== undefined) {
          received += chunk.data.length;
          if (received > head.totalBytes) throw new InvalidArgumentError("snapshot data exceeds its announced size");
          chunks.push(chunk.data);
        } else {
          throw new InvalidArgumentError("snapshot chunks out of order: the head comes first, once");
        }
      } catch (error) {
        transfer.fail(error);
      }
    });
    call.on("end", () => {
      if (!this.#inboundSnapshots.has(transfer)) return;
      if (head === null || received !== head.totalBytes) {
        transfer.fail(new InvalidArgumentError(`snapshot transfer ended after ${received} bytes`));
        return;
      }
      this.#inboundSnapshots.delete(transfer);
      // setHandler(null) and close() fail the transfers under way, so a node takes this one.
      const handler = this.#handler;
      assert(handler !== null, "an inbound snapshot transfer outlived the transport's handler");
      const { message, snapshotMetadata } = head;
      this.#stats.receivedMessages += 1;
      handler.step({ ...message, snapshot: { metadata: snapshotMetadata, data: Buffer.concat(chunks) } });
      callback(null, { bytesReceived: received });
    });
    // The sender cancelled or its connection broke: nobody waits for an answer. As with
    // inbound streams, "end" may never come.
    const forget = (): void => {
      this.#inboundSnapshots.delete(transfer);
      chunks = [];
    };
    call.on("cancelled", forget);
    call.on("error", (error: Error) => {
      this.#logger.trace({ error: error.message }, "inbound snapshot call error");
      forget();
    });
  }

  /** Why a new inbound snapshot transfer is refused before any of it is read, or null. */
  #snapshotRefusal(authorized: boolean): ShoalError | null {
    // UNAVAILABLE rather than an acknowledgement: the sender reports the snapshot failed,
    // and raft sends it again once the follower answers (after a restart, say).
    if (this.#closed) return new UnavailableError(`the raft transport of node ${this.id} is closed`);
    if (!authorized) return new PermissionDeniedError("peer may not send snapshots");
    if (this.#handler === null) {
      return new UnavailableError(`the raft node ${this.id} is not running, so it cannot install a snapshot`);
    }
    return null;
  }

  /** Validates a transfer's head and claims the sender's one transfer slot for it. */
  #acceptSnapshotHead(transfer: InboundSnapshot, wire: RaftMessage__Output, totalBytes: number, authorized: NodeId | null): SnapshotHead {
    const from = this.#senderOf(wire.from, authorized);
    const message = this.#acceptMessage(messageFromWire(wire), from);
    if (message.type !== "snap" || message.snapshot === null) throw new InvalidArgumentError("snapshot head is not a snap message");
    if (!Number.isSafeInteger(totalBytes) || totalBytes < 0 || totalBytes > snapshotTransferBytesMax) {
      throw new InvalidArgumentError(`snapshot size ${totalBytes} exceeds snapshotTransferBytesMax ${snapshotTransferBytesMax}`);
    }
    // A leader sends one snapshot per follower at a time and sends another only once the
    // previous one failed on its side, so an older transfer from the same sender is dead,
    // even if its connection has not been noticed broken yet (a vanished host): it gives
    // way rather than being buffered beside the new one, or blocking it.
    for (const other of [...this.#inboundSnapshots]) {
      if (other.from === from) other.fail(new CancelledError(`replaced by a newer snapshot transfer from node ${from}`));
    }
    transfer.from = from;
    this.#logger.debug({ from, index: message.snapshot.metadata.index, totalBytes }, "receiving a snapshot");
    return { message, snapshotMetadata: message.snapshot.metadata, totalBytes };
  }

  #failInboundSnapshots(error: UnavailableError): void {
    for (const transfer of [...this.#inboundSnapshots]) transfer.fail(error);
  }

  grpcService(): GrpcService {
    const definition = { ...this.#service, Stream: { ...this.#service.Stream, requestDeserialize: passBytes } };
    return { definition, handlers: this.#handlers() };
  }

  async listen(options: { host: string; port: number; credentials?: ServerCredentials }): Promise<string> {
    if (this.#server !== null) throw new InvalidArgumentError("raft transport is already listening");
    this.#server = await startGrpcServer({
      host: options.host,
      port: options.port,
      services: [this.grpcService()],
      ...(options.credentials === undefined ? {} : { credentials: options.credentials }),
    });
    return this.#server.address;
  }

  stats(): RaftTransportStats {
    return { ...this.#stats };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#handler = null;
    for (const peer of this.#peers.values()) this.#closePeer(peer, { flush: false });
    this.#peers.clear();
    // End inbound calls so that the server's graceful shutdown does not wait for peers, and
    // so that a server shared with other services (the daemon's) stops reading them.
    for (const finish of [...this.#inbound]) finish();
    this.#failInboundSnapshots(new UnavailableError(`the raft transport of node ${this.id} closed during the snapshot transfer`));
    await this.#server?.close();
    this.#server = null;
  }
}

export function createGrpcRaftTransport(options: GrpcRaftTransportOptions): RaftTransport {
  return new GrpcRaftTransport(options);
}
