import type { ChannelCredentials } from "@grpc/grpc-js";

import { FailedPreconditionError, InvalidArgumentError, NotFoundError, NotImplementedError, UnavailableError, errorMessage, throwIfAborted } from "../common/errors.js";
import type { Clock } from "../common/clock.js";
import type { Logger } from "../common/logger.js";
import { shoalVersion } from "../common/version.js";
import type { Engine } from "../engine/index.js";
import { joinWithToken } from "../manager/ca/index.js";
import { notManagerMessages } from "../manager/controlapi/index.js";
import type { ClusterControl, ControlApi, ManagerStatus, SwarmInitRequest, SwarmJoinRequest, SwarmMembership } from "../manager/controlapi/index.js";
import { hasManagerState, hostOfAddress, initManager, joinManager, restartManager } from "../manager/manager/index.js";
import type { ForwardedRequest, ForwardedResponse, ForwardExecutor, Manager } from "../manager/manager/index.js";
import type { JoinTokens, Node, NodeRole } from "../manager/objects/index.js";
import { channelCredentials } from "../rpc/tls/index.js";
import { createAgent, createEngineAdapter, createEngineExecutor, type Agent } from "../worker/index.js";
import type { SwarmInfo } from "../api/system-info.js";
import type { GrpcEndpoint } from "./grpc-endpoint.js";
import { loadWorkerState, removeWorkerState, saveWorkerState } from "./worker-state.js";

/** How long `swarm join` as a manager waits to learn the raft leader before it answers. */
export const joinLeaderWaitMsMax = 30_000;
const joinLeaderPollMs = 50;

export interface SwarmNodeOptions {
  readonly dataDir: string;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly engine: Engine;
  readonly grpc: GrpcEndpoint;
  /** The daemon's node id (used outside a swarm; the CA's id replaces it inside one). */
  readonly localNodeId: string;
  /** --advertise-addr, or null to advertise the bound gRPC address. */
  readonly advertiseAddr: string | null;
  /** Runs REST requests other managers forward to this one (fastify inject). */
  readonly forward: ForwardExecutor;
}

type SwarmState =
  | { readonly kind: "none" }
  | { readonly kind: "manager"; readonly manager: Manager; readonly agent: Agent }
  | { readonly kind: "worker"; readonly nodeId: string; readonly clusterId: string; readonly agent: Agent };

/**
 * The node's swarm state machine, implementing the REST routes' ClusterControl:
 * none -> (init | join) -> manager or worker -> (leave) -> none. Every node in a swarm runs
 * a worker agent on the embedded engine, managers included, so managers run tasks too.
 * Transitions are serialised: one init/join/leave at a time.
 */
export class SwarmNode implements ClusterControl {
  readonly #options: SwarmNodeOptions;
  readonly #log: Logger;
  #state: SwarmState = { kind: "none" };
  #transition: Promise<unknown> = Promise.resolve();
  #closed = false;

  constructor(options: SwarmNodeOptions) {
    this.#options = options;
    this.#log = options.logger.child({ component: "swarm" });
  }

  /** Resumes the swarm role saved on disk (manager, else worker), or serves plain Health. */
  async start(options: { signal?: AbortSignal } = {}): Promise<void> {
    const { dataDir } = this.#options;
    if (await hasManagerState(dataDir, options)) {
      const manager = await restartManager({ dataDir, logger: this.#options.logger, forward: this.#options.forward, ...options });
      this.#options.grpc.preferPort(portOf(manager.advertiseAddress));
      await this.#becomeManager(manager);
      this.#log.info({ nodeId: manager.nodeId, clusterId: manager.clusterId }, "resumed as a swarm manager");
      return;
    }
    const worker = await loadWorkerState(dataDir);
    await this.#options.grpc.serve({ nodeId: worker?.nodeId ?? this.#options.localNodeId });
    if (worker === undefined) return;
    const credentials = channelCredentials({ ...worker.material, clusterId: worker.clusterId });
    const agent = await this.#startAgent(worker.nodeId, worker.managers, credentials);
    this.#state = { kind: "worker", nodeId: worker.nodeId, clusterId: worker.clusterId, agent };
    this.#log.info({ nodeId: worker.nodeId, clusterId: worker.clusterId }, "resumed as a swarm worker");
  }

  /** The node id to show: the CA-issued one inside a swarm. */
  nodeId(): string {
    switch (this.#state.kind) {
      case "none":
        return this.#options.localNodeId;
      case "manager":
        return this.#state.manager.nodeId;
      case "worker":
        return this.#state.nodeId;
    }
  }

  /** The cluster id, or "" outside a swarm. */
  clusterId(): string {
    return this.#state.kind === "manager" ? this.#state.manager.clusterId : this.#state.kind === "worker" ? this.#state.clusterId : "";
  }

  /** /info's Swarm block. */
  info(): SwarmInfo {
    if (this.#state.kind === "none") return { state: "inactive", nodeAddr: "", controlAvailable: false, error: "" };
    const nodeAddr = this.#state.kind === "manager" ? hostOfAddress(this.#state.manager.advertiseAddress) : this.#grpcHost();
    return { state: "active", nodeAddr, controlAvailable: this.#state.kind === "manager", error: "" };
  }

  /** Whether REST writes must go to the leader: this node is a manager that does not lead. */
  forwardsWrites(): boolean {
    return this.#state.kind === "manager" && !this.#state.manager.isLeader();
  }

  /** Replays a REST request on the leader. UnavailableError when this node is not a manager. */
  forwardToLeader(request: ForwardedRequest, options: { signal?: AbortSignal } = {}): Promise<ForwardedResponse> {
    const state = this.#state;
    if (state.kind !== "manager") return Promise.reject(new UnavailableError(notManagerMessages[state.kind]));
    return state.manager.forwardToLeader(request, options);
  }

  membership(): SwarmMembership {
    return this.#state.kind;
  }

  isManager(): boolean {
    return this.#state.kind === "manager";
  }

  controlApi(): ControlApi {
    return this.#manager().controlApi();
  }

  leaderAddress(): string | undefined {
    return this.#state.kind === "manager" ? this.#state.manager.leaderAddress() : undefined;
  }

  swarmInit(request: SwarmInitRequest, options: { signal?: AbortSignal } = {}): Promise<string> {
    return this.#serialise(async () => {
      this.#refuseIfInSwarm();
      if (request.forceNewCluster) throw new NotImplementedError("--force-new-cluster is not supported yet: restore the manager's data dir instead");
      this.#logListenAddress(request.listenAddr);
      const advertiseAddress = this.#advertiseAddress(request.advertiseAddr);
      const manager = await initManager({
        dataDir: this.#options.dataDir,
        logger: this.#options.logger,
        advertiseAddress,
        // Docker names the cluster "default" when the request does not.
        clusterSpec: { ...request.spec, name: typeof request.spec.name === "string" && request.spec.name !== "" ? request.spec.name : "default" },
        availability: request.availability,
        forward: this.#options.forward,
        ...options,
      });
      await this.#becomeManager(manager);
      this.#log.info({ nodeId: manager.nodeId, clusterId: manager.clusterId, advertiseAddress }, "swarm initialised");
      return manager.nodeId;
    });
  }

  swarmJoin(request: SwarmJoinRequest, options: { signal?: AbortSignal } = {}): Promise<void> {
    return this.#serialise(async () => {
      this.#refuseIfInSwarm();
      if (request.remoteAddrs.length === 0) throw new InvalidArgumentError("give the address of a manager to join through");
      this.#logListenAddress(request.listenAddr);
      const advertiseAddress = this.#advertiseAddress(request.advertiseAddr);
      const host = hostOfAddress(advertiseAddress);
      // The token does not say its role: the CA's answer does. A manager token then goes
      // through joinManager, which asks the CA again; the node the first answer registered
      // is removed once this manager is in raft.
      const joined = await firstJoin(request, host, options.signal);
      if (joined.identity.role === "manager") {
        const manager = await joinManager({
          dataDir: this.#options.dataDir,
          logger: this.#options.logger,
          advertiseAddress,
          remoteAddresses: request.remoteAddrs,
          joinToken: request.joinToken,
          forward: this.#options.forward,
          ...options,
        });
        await this.#becomeManager(manager);
        await this.#waitForLeader(manager, options.signal);
        await this.#removeProbeNode(manager, joined.identity.nodeId);
        this.#log.info({ nodeId: manager.nodeId, clusterId: manager.clusterId }, "joined the swarm as a manager");
        return;
      }
      const { nodeId, clusterId } = joined.identity;
      await saveWorkerState(this.#options.dataDir, { nodeId, clusterId, managers: request.remoteAddrs, material: joined });
      const agent = await this.#startAgent(nodeId, request.remoteAddrs, channelCredentials({ ...joined, clusterId }));
      this.#state = { kind: "worker", nodeId, clusterId, agent };
      this.#log.info({ nodeId, clusterId }, "joined the swarm as a worker");
    });
  }

  swarmLeave(force: boolean, options: { signal?: AbortSignal } = {}): Promise<void> {
    return this.#serialise(async () => {
      const state = this.#state;
      switch (state.kind) {
        case "none":
          throw new FailedPreconditionError("This node is not part of a swarm");
        case "manager":
          if (!force) {
            throw new FailedPreconditionError(
              "You are attempting to leave the swarm on a node that is participating as a manager. Use `--force` to ignore this message.",
            );
          }
          // Leave first: when raft refuses, the node stays a manager with its agent running.
          await state.manager.leave({ force, ...options });
          await state.agent.stop();
          break;
        case "worker":
          await state.agent.stop();
          await removeWorkerState(this.#options.dataDir);
          break;
      }
      this.#state = { kind: "none" };
      await this.#options.grpc.serve({ nodeId: this.#options.localNodeId });
      this.#log.info({ role: state.kind }, "left the swarm");
    });
  }

  joinTokens(): JoinTokens {
    return this.#manager().joinTokens();
  }

  rotateJoinToken(role: NodeRole, options: { signal?: AbortSignal } = {}): Promise<JoinTokens> {
    return this.#manager().rotateJoinToken(role, options);
  }

  managerStatus(nodeId: string): ManagerStatus | undefined {
    return this.#state.kind === "manager" ? this.#state.manager.managerStatus(nodeId) : undefined;
  }

  /** Stops the agent and the manager; swarm state stays on disk for the next start. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#transition.catch(() => undefined);
    const state = this.#state;
    this.#state = { kind: "none" };
    if (state.kind !== "none") await state.agent.stop();
    if (state.kind === "manager") await state.manager.close();
    await this.#options.grpc.close();
  }

  #serialise<T>(work: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new UnavailableError("the daemon is shutting down"));
    const next = this.#transition.catch(() => undefined).then(work);
    this.#transition = next;
    return next;
  }

  #manager(): Manager {
    if (this.#state.kind !== "manager") throw new UnavailableError(notManagerMessages[this.#state.kind]);
    return this.#state.manager;
  }

  #refuseIfInSwarm(): void {
    if (this.#state.kind !== "none") {
      throw new FailedPreconditionError('This node is already part of a swarm. Use "shoal swarm leave" to leave this swarm and join another one.');
    }
  }

  /** The cluster server is bound by --listen-addr at start; docker sends a default here on every request. */
  #logListenAddress(requested: string): void {
    if (requested !== "" && requested !== this.#options.grpc.address) {
      this.#log.info({ requested, serving: this.#options.grpc.address }, "the request's listen address is ignored: the daemon's --listen-addr is used");
    }
  }

  #grpcHost(): string {
    const address = this.#options.grpc.address;
    return address === "" ? "" : hostOfAddress(address);
  }

  /** The request's address, else --advertise-addr, else the bound gRPC address (which must be routable). */
  #advertiseAddress(requested: string): string {
    const chosen = requested !== "" ? requested : (this.#options.advertiseAddr ?? this.#options.grpc.address);
    const host = hostOfAddress(chosen);
    if (host === "0.0.0.0" || host === "::") {
      throw new InvalidArgumentError(`the gRPC server listens on ${chosen}, which other nodes cannot reach: give --advertise-addr`);
    }
    return chosen;
  }

  async #becomeManager(manager: Manager): Promise<void> {
    try {
      await this.#options.grpc.serve({ nodeId: manager.nodeId, services: manager.grpcServices(), credentials: manager.serverCredentials() });
      const agent = await this.#startAgent(manager.nodeId, [manager.advertiseAddress], manager.channelCredentials());
      this.#state = { kind: "manager", manager, agent };
    } catch (error) {
      this.#log.error({ err: errorMessage(error) }, "could not serve the manager; closing it");
      await manager.close();
      throw error;
    }
  }

  /** Until then the new manager refuses cluster writes, which the user would take for a failed join. */
  async #waitForLeader(manager: Manager, signal: AbortSignal | undefined): Promise<void> {
    const deadline = this.#options.clock.now() + joinLeaderWaitMsMax;
    while (!manager.isLeader() && manager.leaderAddress() === undefined) {
      if (this.#options.clock.now() >= deadline) {
        this.#log.warn({ waitedMs: joinLeaderWaitMsMax }, "joined raft, but no leader is known yet: cluster writes fail until one is elected");
        return;
      }
      await this.#options.clock.sleep(joinLeaderPollMs, signal === undefined ? {} : { signal });
    }
  }

  /**
   * Removes the Node the role-probing certificate request registered (it never connects).
   * It was registered as a manager, and managers are only removed once demoted.
   */
  async #removeProbeNode(manager: Manager, probeNodeId: string): Promise<void> {
    if (probeNodeId === manager.nodeId) return;
    try {
      const probe = await this.#replicatedNode(manager, probeNodeId);
      const demoted = { ...probe.spec, role: "worker" as const };
      if (manager.isLeader()) {
        await manager.controlApi().updateNode(probeNodeId, probe.meta.version, demoted);
        await manager.controlApi().removeNode(probeNodeId, { force: true });
        return;
      }
      const body = Buffer.from(JSON.stringify({ Role: "worker", Availability: demoted.availability, Labels: demoted.labels }));
      await this.#forwardOrThrow(manager, { method: "POST", path: `/nodes/${probeNodeId}/update`, query: `version=${probe.meta.version}`, contentType: "application/json", body });
      await this.#forwardOrThrow(manager, { method: "DELETE", path: `/nodes/${probeNodeId}`, query: "force=1", contentType: "", body: Buffer.alloc(0) });
    } catch (error) {
      this.#log.warn({ err: errorMessage(error), nodeId: probeNodeId }, `could not remove the placeholder node: demote it and remove it with "shoal node rm --force ${probeNodeId}"`);
    }
  }

  /** A joining manager's replica catches up after raft admits it: wait for the node to appear. */
  async #replicatedNode(manager: Manager, nodeId: string): Promise<Node> {
    const deadline = this.#options.clock.now() + joinLeaderWaitMsMax;
    for (;;) {
      try {
        return manager.controlApi().getNode(nodeId);
      } catch (error) {
        if (!(error instanceof NotFoundError) || this.#options.clock.now() >= deadline) throw error;
      }
      await this.#options.clock.sleep(joinLeaderPollMs);
    }
  }

  async #forwardOrThrow(manager: Manager, request: ForwardedRequest): Promise<void> {
    const answer = await manager.forwardToLeader(request);
    if (answer.status >= 300) throw new UnavailableError(`the leader answered ${answer.status}: ${answer.body.toString("utf8").slice(0, 200)}`);
  }

  async #startAgent(nodeId: string, managers: readonly string[], credentials: ChannelCredentials): Promise<Agent> {
    const { engine } = this.#options;
    const executor = createEngineExecutor(createEngineAdapter({ containers: engine.containers, images: engine.images }), {
      nodeId,
      engineVersion: shoalVersion,
    });
    const agent = createAgent({ dataDir: this.#options.dataDir, managers, executor, logger: this.#options.logger, channelCredentials: credentials });
    await agent.start();
    return agent;
  }
}

function portOf(address: string): number {
  return Number(address.slice(address.lastIndexOf(":") + 1));
}

/** Asks each manager in turn for a certificate; only an outage moves on to the next one. */
async function firstJoin(request: SwarmJoinRequest, host: string, signal: AbortSignal | undefined): ReturnType<typeof joinWithToken> {
  let lastError: unknown;
  for (const address of request.remoteAddrs) {
    throwIfAborted(signal);
    try {
      return await joinWithToken({ address, token: request.joinToken, addresses: [host], ...(signal === undefined ? {} : { signal }) });
    } catch (error) {
      if (!(error instanceof UnavailableError)) throw error;
      lastError = error;
    }
  }
  throw lastError;
}
