import { randomBytes as cryptoRandomBytes } from "node:crypto";
import diagnosticsChannel from "node:diagnostics_channel";
import { once } from "node:events";

import { Metadata, status as grpcStatus, type ServerUnaryCall, type ServerWritableStream, type ServiceError } from "@grpc/grpc-js";

import { systemClock, type Clock } from "../../common/clock.js";
import {
  FailedPreconditionError,
  NotFoundError,
  ResourceExhaustedError,
  UnauthenticatedError,
  UnavailableError,
  errorMessage,
  isShoalError,
} from "../../common/errors.js";
import type { Logger } from "../../common/logger.js";
import type { ProtoGrpcType as DispatcherProto } from "../../gen/dispatcher.js";
import type { AssignmentsMessage } from "../../gen/shoal/v1/AssignmentsMessage.js";
import type { AssignmentsRequest__Output } from "../../gen/shoal/v1/AssignmentsRequest.js";
import type { DispatcherHandlers } from "../../gen/shoal/v1/Dispatcher.js";
import type { SessionMessage } from "../../gen/shoal/v1/SessionMessage.js";
import type { SessionRequest__Output } from "../../gen/shoal/v1/SessionRequest.js";
import { loadProto } from "../../rpc/proto.js";
import { grpcMessageSizeBytesMax, type GrpcService } from "../../rpc/server.js";
import { clusterDefaults, createIdGenerator, type NodeDescription, type NodeRole, type Task } from "../objects/index.js";
import type { MemoryStore } from "../store/index.js";
import { AssignmentSet, assignedTasks, concernsNode } from "./assignments.js";
import { streamNetworkMap, type NetworkMapCall } from "./network-map-stream.js";
import { StatusBatcher } from "./status-batcher.js";
import { encodeTask, parseNodeDescription, parseStatusUpdates } from "./wire.js";

/** Heartbeats a node may miss before it is marked down (swarmkit's grace multiplier). */
export const heartbeatGracePeriods = 3;
/**
 * Heartbeat periods a new leader waits for the nodes the store has as ready. Longer than
 * heartbeatGracePeriods: a worker first has to notice that the old leader is gone (its
 * heartbeat deadline, a session-open timeout, a follower's redirect, reconnect backoff).
 */
export const leaderStartGracePeriods = 6;
/**
 * Up to this fraction of the period is taken off at random, so workers do not beat in step.
 * Off, not on: the grace counts whole configured periods, so a dead node is marked down
 * within heartbeatGracePeriods periods of its last beat whatever the jitter drew.
 */
export const heartbeatJitterFraction = 0.25;
/** Trailing metadata key naming the leader when a follower refuses a call. */
export const leaderAddressMetadataKey = "shoal-leader-address";
/** Encoded tasks in one assignments message, leaving room below the gRPC limit for framing. */
export const assignmentsMessageBytesMax = grpcMessageSizeBytesMax / 2;

/** Published with `{ nodeId, sessionId, addr }` when a node's session opens. */
export const sessionStartedChannel = diagnosticsChannel.channel("shoal:dispatcher:session-started");
/** Published with `{ nodeId }` when a node is marked down after missing its heartbeats. */
export const nodeDownChannel = diagnosticsChannel.channel("shoal:dispatcher:node-down");

/** Who a call comes from, as proven by its credentials. */
export interface CallerIdentity {
  nodeId: string;
  role: NodeRole;
}

/** What identify() may look at: the call's metadata, peer address and TLS context. */
export type DispatcherCall = Pick<ServerUnaryCall<unknown, unknown>, "metadata" | "getPeer" | "getAuthContext">;

export interface ManagerPeerAddress {
  nodeId: string;
  addr: string;
  /** As this (leading) manager hears from it; sent so that followers can show it too. */
  reachability?: "reachable" | "unreachable" | "unknown";
}

export interface DispatcherOptions {
  store: MemoryStore;
  logger: Logger;
  /** Maps a call to the node its credentials prove, or null to refuse it (UNAUTHENTICATED). */
  identify: (call: DispatcherCall) => CallerIdentity | null;
  /** The leader's "host:port" when known; sent to workers that reach a stopped dispatcher. */
  leaderAddress?: () => string | null;
  /** The cluster's managers, sent to workers so they can fail over. */
  managers?: () => ManagerPeerAddress[];
  clock?: Clock;
  /** Uniform in [0, 1), for heartbeat jitter. */
  random?: () => number;
  randomBytes?: (size: number) => Uint8Array;
  /** Overrides the cluster spec's heartbeat period. */
  heartbeatPeriodMs?: number;
  /**
   * The raft term this manager was elected in, read once per start(). Every session and
   * assignments message carries it, so workers refuse a deposed leader's commands (issue 6).
   */
  term?: () => number;
}

/**
 * The leader's side of worker sessions (after swarmkit's manager/dispatcher). Inactive
 * until start(): the daemon starts it when this manager becomes leader and stops it when
 * leadership is lost; while inactive every call fails with UNAVAILABLE naming the leader.
 */
export interface Dispatcher {
  /** The gRPC service to register on the manager's server (handlers stay valid across start/stop). */
  grpcService(): GrpcService;
  /**
   * Starts serving. Nodes the store has as ready get one grace period to open a session
   * before they are marked down, since their heartbeats went to the previous leader.
   */
  start(): void;
  /** Ends every session and stream with UNAVAILABLE, fails waiting status writes, stops timers. */
  stop(): Promise<void>;
  readonly running: boolean;
  /** Node ids with a live session (diagnostics and tests). */
  sessions(): string[];
}

interface NodeSession {
  nodeId: string;
  sessionId: string;
  /** Null once the session stream ended; heartbeats are then refused until a new session. */
  call: ServerWritableStream<SessionRequest__Output, SessionMessage> | null;
  readonly streams: Set<ServerWritableStream<AssignmentsRequest__Output, AssignmentsMessage>>;
  readonly abort: AbortController;
  cancelExpiry: () => void;
  /** What the last session message said (managers and role), so that only changes are sent. */
  sent: string;
}

function peerHost(peer: string): string {
  const withoutScheme = peer.replace(/^ipv[46]:/u, "");
  const bracketed = /^\[([^\]]*)\]/u.exec(withoutScheme);
  if (bracketed?.[1] !== undefined) return bracketed[1];
  const colon = withoutScheme.lastIndexOf(":");
  return colon === -1 ? withoutScheme : withoutScheme.slice(0, colon);
}

/** The full set must fit one message (it replaces what the worker has); refused, not cut, when it does not. */
function encodeComplete(tasks: readonly Task[], nodeId: string): Buffer[] {
  const encoded = tasks.map(encodeTask);
  const bytes = encoded.reduce((sum, task) => sum + task.length, 0);
  if (bytes > assignmentsMessageBytesMax) {
    throw new ResourceExhaustedError(`node ${nodeId} has ${tasks.length} tasks (${bytes} bytes), more than one assignments message holds; scale services down or spread them over more nodes`);
  }
  return encoded;
}

/** Splits a delta's tasks into messages of at most assignmentsMessageBytesMax (one task per message at least). */
function chunkEncodedTasks(encoded: readonly Buffer[]): Buffer[][] {
  const chunks: Buffer[][] = [[]];
  let bytes = 0;
  for (const task of encoded) {
    const last = chunks.at(-1) ?? [];
    if (last.length > 0 && bytes + task.length > assignmentsMessageBytesMax) {
      chunks.push([task]);
      bytes = task.length;
    } else {
      last.push(task);
      bytes += task.length;
    }
  }
  return chunks;
}

class DispatcherImpl implements Dispatcher {
  readonly #store: MemoryStore;
  readonly #logger: Logger;
  readonly #identify: (call: DispatcherCall) => CallerIdentity | null;
  readonly #leaderAddress: () => string | null;
  readonly #managers: () => ManagerPeerAddress[];
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #newSessionId: () => string;
  readonly #heartbeatPeriodMs: number | undefined;
  readonly #leaderTerm: () => number;
  /** The term of the leadership being served; fixed from start() to stop(). */
  #term = 0;
  readonly #proto: DispatcherProto;
  readonly #nodes = new Map<string, NodeSession>();
  readonly #writes = new Set<Promise<void>>();
  /** Ends the watch on Node objects (joins, role changes) while this dispatcher runs. */
  #nodeWatch: AbortController | null = null;
  #batcher: StatusBatcher | null = null;

  constructor(options: DispatcherOptions) {
    this.#store = options.store;
    this.#logger = options.logger.child({ component: "dispatcher" });
    this.#identify = options.identify;
    this.#leaderAddress = options.leaderAddress ?? (() => null);
    this.#managers = options.managers ?? (() => []);
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? Math.random;
    this.#newSessionId = createIdGenerator(options.randomBytes ?? cryptoRandomBytes);
    this.#heartbeatPeriodMs = options.heartbeatPeriodMs;
    this.#leaderTerm = options.term ?? (() => 0);
    this.#proto = loadProto<DispatcherProto>("shoal/v1/dispatcher.proto");
  }

  get running(): boolean {
    return this.#batcher !== null;
  }

  sessions(): string[] {
    return [...this.#nodes.values()].filter((session) => session.call !== null).map((session) => session.nodeId);
  }

  start(): void {
    if (this.#batcher !== null) return;
    this.#term = this.#leaderTerm();
    this.#batcher = new StatusBatcher({ store: this.#store, clock: this.#clock, logger: this.#logger });
    // Ready nodes beat to the previous leader; unknown ones joined and never opened a session.
    const awaited = this.#store.view((tx) => tx.find("node").filter((node) => node.status.state === "ready" || node.status.state === "unknown"));
    for (const node of awaited) {
      this.#nodes.set(node.id, this.#newNodeSession(node.id, "", leaderStartGracePeriods));
    }
    this.#nodeWatch = new AbortController();
    void this.#track(this.#watchNodes(this.#nodeWatch.signal));
    this.#logger.info({ nodesAwaited: awaited.length, term: this.#term }, "dispatcher started");
  }

  /**
   * A node the CA registers while this dispatcher runs gets as long as a new leader gives
   * its nodes to open its first session; one that never does is marked down, so it can be
   * removed without --force. A changed Node (`node promote`, `node demote`) is told to its
   * session at once, so the node does not have to poll for its role.
   */
  async #watchNodes(signal: AbortSignal): Promise<void> {
    const events = this.#store.watch({ signal, filter: (event) => event.type === "restored" || (event.type !== "commit" && event.kind === "node") });
    try {
      for await (const event of events) {
        if (event.type === "restored") {
          for (const session of this.#nodes.values()) this.#sendSessionMessage(session);
        } else if (event.type === "commit" || event.kind !== "node") {
          continue;
        } else if (event.type === "created") {
          if (!this.#nodes.has(event.object.id)) this.#nodes.set(event.object.id, this.#newNodeSession(event.object.id, "", leaderStartGracePeriods));
        } else if (event.type === "updated") {
          const session = this.#nodes.get(event.object.id);
          if (session !== undefined) this.#sendSessionMessage(session);
        }
      }
    } catch (error) {
      // A watcher that fell behind: heartbeats still re-send a changed role, one period later.
      if (!signal.aborted) this.#logger.warn({ err: errorMessage(error) }, "stopped watching nodes; role changes reach workers with their next heartbeat");
    }
  }

  async stop(): Promise<void> {
    const batcher = this.#batcher;
    if (batcher === null) return;
    this.#batcher = null;
    this.#nodeWatch?.abort();
    this.#nodeWatch = null;
    for (const session of [...this.#nodes.values()]) this.#endSession(session, this.#unavailable("this manager stopped dispatching"));
    this.#nodes.clear();
    await batcher.close();
    await Promise.allSettled([...this.#writes]);
    this.#logger.info("dispatcher stopped");
  }

  grpcService(): GrpcService {
    const handlers: DispatcherHandlers = {
      Session: (call) => this.#guardStream(call, () => this.#session(call)),
      Heartbeat: (call, callback) => {
        this.#guardUnary(callback, () => this.#heartbeat(call, call.request.sessionId));
      },
      UpdateTaskStatus: (call, callback) => {
        this.#guardUnary(callback, async () => {
          const session = this.#requireSession(call, call.request.sessionId);
          const updates = parseStatusUpdates(call.request.updates);
          await this.#requireBatcher().submit(session.nodeId, updates);
          return {};
        });
      },
      Assignments: (call) => this.#guardStream(call, () => this.#assignments(call)),
      NetworkMap: (call) => this.#guardStream(call, () => this.#networkMap(call)),
    };
    return { definition: this.#proto.shoal.v1.Dispatcher.service, handlers };
  }

  /** Runs `work` (sync or async); whatever it throws becomes the call's status. */
  #guardUnary<T>(callback: (error: Partial<ServiceError> | null, value?: T) => void, work: () => Promise<T> | T): void {
    if (!this.running) {
      callback(this.#unavailable("this manager is not the leader"));
      return;
    }
    Promise.resolve().then(work).then(
      (value) => callback(null, value),
      (error: unknown) => callback(this.#toServiceError(error)),
    );
  }

  #guardStream(call: ServerWritableStream<unknown, unknown>, work: () => Promise<void>): void {
    if (!this.running) {
      call.emit("error", this.#unavailable("this manager is not the leader"));
      return;
    }
    work().catch((error: unknown) => {
      if (!call.writableEnded) call.emit("error", this.#toServiceError(error));
    });
  }

  #requireBatcher(): StatusBatcher {
    if (this.#batcher === null) throw new UnavailableError("this manager is not the leader");
    return this.#batcher;
  }

  /** The live session a request names; NotFound tells the worker to open a new one. */
  #requireSession(call: DispatcherCall, sessionId: string): NodeSession {
    const identity = this.#requireIdentity(call);
    const session = this.#nodes.get(identity.nodeId);
    if (session === undefined || session.sessionId !== sessionId || session.call === null || sessionId === "") {
      throw new NotFoundError(`session "${sessionId}" of node ${identity.nodeId} is not active; open a new session`);
    }
    return session;
  }

  #requireIdentity(call: DispatcherCall): CallerIdentity {
    const identity = this.#identify(call);
    if (identity === null) throw new UnauthenticatedError("the caller's credentials do not name a cluster node; join the node to the cluster first");
    return identity;
  }

  /** The configured heartbeat period: what the grace before marking a node down counts in. */
  #periodMs(): number {
    return (
      this.#heartbeatPeriodMs ??
      this.#store.view((tx) => tx.find("cluster")[0]?.spec.heartbeatPeriodMs) ??
      clusterDefaults.heartbeatPeriodMs
    );
  }

  /** The period one heartbeat answer asks the node to beat at: the configured one, less jitter. */
  #jitteredPeriodMs(periodMs: number): number {
    return periodMs - Math.floor(this.#random() * periodMs * heartbeatJitterFraction);
  }

  async #session(call: ServerWritableStream<SessionRequest__Output, SessionMessage>): Promise<void> {
    const identity = this.#requireIdentity(call);
    const description = parseNodeDescription(call.request.description, identity.nodeId);
    const addr = peerHost(call.getPeer());
    await this.#track(this.#register(identity, description, addr));
    if (call.cancelled) return;
    if (!this.running) throw new UnavailableError("this manager stopped dispatching while the session opened");
    const previous = this.#nodes.get(identity.nodeId);
    if (previous !== undefined) this.#endSession(previous, this.#failedPrecondition("a newer session of this node replaced this one"));
    const session = this.#newNodeSession(identity.nodeId, this.#newSessionId(), heartbeatGracePeriods);
    session.call = call;
    this.#nodes.set(identity.nodeId, session);
    call.on("cancelled", () => this.#sessionStreamEnded(session));
    call.on("close", () => this.#sessionStreamEnded(session));
    this.#sendSessionMessage(session);
    this.#logger.info({ nodeId: identity.nodeId, sessionId: session.sessionId, addr }, "node session started");
    if (sessionStartedChannel.hasSubscribers) sessionStartedChannel.publish({ nodeId: identity.nodeId, sessionId: session.sessionId, addr });
  }

  #newNodeSession(nodeId: string, sessionId: string, gracePeriods: number): NodeSession {
    const session: NodeSession = {
      nodeId,
      sessionId,
      call: null,
      streams: new Set(),
      abort: new AbortController(),
      cancelExpiry: () => undefined,
      sent: "",
    };
    this.#armExpiry(session, this.#periodMs() * gracePeriods);
    return session;
  }

  #armExpiry(session: NodeSession, graceMs: number): void {
    session.cancelExpiry();
    session.cancelExpiry = this.#clock.setTimer(graceMs, () => this.#expire(session));
  }

  /** Sends the manager list and the node's desired role when either changed since the last message. */
  #sendSessionMessage(session: NodeSession): void {
    if (session.call === null) return;
    const managers = this.#managers().map((peer) => ({ nodeId: peer.nodeId, addr: peer.addr, reachability: peer.reachability ?? "unknown" }));
    const role = this.#store.view((tx) => tx.get("node", session.nodeId))?.spec.role ?? "";
    const encoded = JSON.stringify({ managers, role });
    if (encoded === session.sent) return;
    session.sent = encoded;
    session.call.write({ sessionId: session.sessionId, nodeId: session.nodeId, managers, term: this.#term, role });
  }

  #sessionStreamEnded(session: NodeSession): void {
    if (session.call === null) return;
    session.call = null;
    session.abort.abort();
    this.#logger.info({ nodeId: session.nodeId, sessionId: session.sessionId }, "node session stream ended; the node is marked down unless it reconnects within the grace period");
  }

  #heartbeat(call: DispatcherCall, sessionId: string): { periodMs: number } {
    const session = this.#requireSession(call, sessionId);
    const periodMs = this.#periodMs();
    this.#armExpiry(session, periodMs * heartbeatGracePeriods);
    this.#sendSessionMessage(session);
    return { periodMs: this.#jitteredPeriodMs(periodMs) };
  }

  #expire(session: NodeSession): void {
    if (this.#nodes.get(session.nodeId) !== session) return;
    this.#nodes.delete(session.nodeId);
    this.#endSession(session, this.#unavailable("the session expired: no heartbeat within the grace period"));
    this.#logger.warn({ nodeId: session.nodeId }, "node missed its heartbeats; marking it down");
    if (nodeDownChannel.hasSubscribers) nodeDownChannel.publish({ nodeId: session.nodeId });
    void this.#track(this.#markDown(session.nodeId));
  }

  #endSession(session: NodeSession, error: Partial<ServiceError>): void {
    session.cancelExpiry();
    session.abort.abort();
    const call = session.call;
    session.call = null;
    for (const stream of session.streams) if (!stream.writableEnded) stream.emit("error", error);
    session.streams.clear();
    if (call !== null && !call.writableEnded) call.emit("error", error);
  }

  /** Creates or refreshes the node's Node object; its spec (availability included) belongs to the CA's join and `node update`. */
  async #register(identity: CallerIdentity, description: NodeDescription, addr: string): Promise<void> {
    await this.#store.update((tx) => {
      const existing = tx.get("node", identity.nodeId);
      const status = { state: "ready" as const, addr, message: "" };
      if (existing === undefined) {
        tx.create("node", {
          id: identity.nodeId,
          spec: { name: "", labels: {}, role: identity.role, availability: "active" },
          description,
          status,
        });
        return;
      }
      tx.update("node", { ...existing, description, status });
    });
  }

  async #markDown(nodeId: string): Promise<void> {
    try {
      await this.#store.update((tx) => {
        const node = tx.get("node", nodeId);
        if (node === undefined || node.status.state === "down") return;
        tx.update("node", { ...node, status: { ...node.status, state: "down", message: "heartbeat failure" } });
      });
    } catch (error) {
      // A lost leadership or a racing write: the next leader re-checks every node on start.
      this.#logger.warn({ nodeId, err: error }, "could not mark node down");
    }
  }

  #track(work: Promise<void>): Promise<void> {
    this.#writes.add(work);
    const forget = (): void => {
      this.#writes.delete(work);
    };
    work.then(forget, forget);
    return work;
  }

  async #assignments(call: ServerWritableStream<AssignmentsRequest__Output, AssignmentsMessage>): Promise<void> {
    const session = this.#requireSession(call, call.request.sessionId);
    const nodeId = session.nodeId;
    const abort = new AbortController();
    const onSessionEnd = (): void => abort.abort();
    session.abort.signal.addEventListener("abort", onSessionEnd, { once: true });
    call.on("cancelled", onSessionEnd);
    session.streams.add(call);
    const set = new AssignmentSet(nodeId);
    let sequence = 0;
    const term = this.#term;
    const send = async (message: Omit<AssignmentsMessage, "sequence" | "term">): Promise<void> => {
      sequence += 1;
      if (!call.write({ ...message, sequence, term })) await once(call, "drain", { signal: abort.signal });
    };
    try {
      const { result, events } = this.#store.viewAndWatch((tx) => assignedTasks(tx, nodeId), {
        filter: (event) => concernsNode(event, nodeId),
        signal: abort.signal,
      });
      set.reset(result);
      await send({ type: "COMPLETE", updateTasks: encodeComplete(result, nodeId), removeTaskIds: [] });
      for await (const event of events) {
        if (event.type === "created" || event.type === "updated") set.note(event.object.id, event.kind === "task" ? event.object : null);
        else if (event.type === "deleted") set.note(event.object.id, null);
        else if (event.type === "restored") {
          const tasks = this.#store.view((tx) => assignedTasks(tx, nodeId));
          set.reset(tasks);
          await send({ type: "COMPLETE", updateTasks: encodeComplete(tasks, nodeId), removeTaskIds: [] });
        } else {
          const delta = set.takeDelta();
          if (delta.updates.length === 0 && delta.removes.length === 0) continue;
          for (const [index, chunk] of chunkEncodedTasks(delta.updates.map(encodeTask)).entries()) {
            await send({ type: "INCREMENTAL", updateTasks: chunk, removeTaskIds: index === 0 ? delta.removes : [] });
          }
        }
      }
    } catch (error) {
      if (!abort.signal.aborted) throw error;
    } finally {
      session.abort.signal.removeEventListener("abort", onSessionEnd);
      session.streams.delete(call);
    }
    if (!call.writableEnded) call.emit("error", this.#unavailable("the session ended; open a new session"));
  }

  /** Streams the network map while the caller's session lives. */
  async #networkMap(call: NetworkMapCall): Promise<void> {
    const identity = this.#requireIdentity(call);
    const session = this.#nodes.get(identity.nodeId);
    if (session === undefined || session.call === null) throw new FailedPreconditionError(`node ${identity.nodeId} has no session; open one before asking for the network map`);
    const abort = new AbortController();
    const onEnd = (): void => abort.abort();
    session.abort.signal.addEventListener("abort", onEnd, { once: true });
    call.on("cancelled", onEnd);
    try {
      await streamNetworkMap({ call, store: this.#store, clock: this.#clock, signal: abort.signal });
    } catch (error) {
      if (!abort.signal.aborted) throw error;
    } finally {
      session.abort.signal.removeEventListener("abort", onEnd);
      call.off("cancelled", onEnd);
    }
    if (!call.writableEnded) call.emit("error", this.#unavailable("the session ended; open a new session"));
  }

  #unavailable(details: string): Partial<ServiceError> {
    const metadata = new Metadata();
    const leader = this.#leaderAddress();
    if (leader !== null) metadata.set(leaderAddressMetadataKey, leader);
    return { code: grpcStatus.UNAVAILABLE, details, message: details, metadata };
  }

  #failedPrecondition(details: string): Partial<ServiceError> {
    return { code: grpcStatus.FAILED_PRECONDITION, details, message: details };
  }

  #toServiceError(error: unknown): Partial<ServiceError> {
    if (error instanceof UnavailableError) return this.#unavailable(error.message);
    if (isShoalError(error)) return { code: error.grpcStatus, details: error.message, message: error.message };
    this.#logger.error({ err: error }, "dispatcher call failed unexpectedly");
    const details = `internal error: ${errorMessage(error)}`;
    return { code: grpcStatus.INTERNAL, details, message: details };
  }
}

export function createDispatcher(options: DispatcherOptions): Dispatcher {
  return new DispatcherImpl(options);
}
