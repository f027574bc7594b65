import type { ChannelCredentials } from "@grpc/grpc-js";

import { FailedPreconditionError, InvalidArgumentError, UnavailableError, errorMessage, throwIfAborted } from "../common/errors.js";
import type { Clock } from "../common/clock.js";
import type { Logger } from "../common/logger.js";
import { shoalVersion } from "../common/version.js";
import type { Engine } from "../engine/index.js";
import { joinWithToken, type NodeCredentials } from "../manager/ca/index.js";
import { notManagerMessages } from "../manager/controlapi/index.js";
import type { ClusterControl, ControlApi, ManagerStatus, SwarmInitRequest, SwarmJoinRequest, SwarmMembership } from "../manager/controlapi/index.js";
import { forceNewManagerCluster, hasManagerState, hostOfAddress, initManager, joinManager, restartManager } from "../manager/manager/index.js";
import type { ForcedCluster, ForwardedRequest, ForwardedResponse, ForwardExecutor, Manager } from "../manager/manager/index.js";
import type { JoinTokens, NodeRole } from "../manager/objects/index.js";
import { createManagerLogs, type ManagerLogs } from "../manager/logbroker/index.js";
import type { LogSelector, ServiceLogMessage, ServiceLogOptions, ServiceLogSource } from "../api/docker-swarm/index.js";
import { channelCredentials } from "../rpc/tls/index.js";
import { createAgent, createEngineAdapter, createEngineExecutor, type Agent } from "../worker/index.js";
import { withNetworkAgent } from "../worker/network/index.js";
import type { SwarmInfo } from "../api/system-info.js";
import type { GrpcEndpoint } from "./grpc-endpoint.js";
import {
  DesiredRole,
  demotedCredentials,
  managerDemoted,
  otherManagerAddresses,
  removeTaskContainers,
  waitForDemotion,
  watchRole,
  workerPromotion,
  type Promotion,
} from "./role-change.js";
import { loadWorkerState, removeWorkerState, saveWorkerState, type WorkerSwarmState } from "./worker-state.js";

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
  /** --raft-snapshot-interval: raft entries between snapshots; null = raft's default. */
  readonly raftSnapshotInterval: number | null;
}

type SwarmState =
  | { readonly kind: "none" }
  | { readonly kind: "manager"; readonly manager: Manager; readonly agent: Agent; readonly logs: ManagerLogs }
  | { readonly kind: "worker"; readonly nodeId: string; readonly clusterId: string; readonly agent: Agent };

/**
 * The node's swarm state machine, implementing the REST routes' ClusterControl:
 * none -> (init | join) -> manager or worker -> (leave) -> none. Every node in a swarm runs
 * a worker agent on the embedded engine, managers included, so managers run tasks too.
 * Transitions are serialised: one init/join/leave at a time.
 */
export class SwarmNode implements ClusterControl, ServiceLogSource {
  readonly #options: SwarmNodeOptions;
  readonly #log: Logger;
  #state: SwarmState = { kind: "none" };
  #transition: Promise<unknown> = Promise.resolve();
  #closed = false;
  #roleWatch: { readonly controller: AbortController; readonly done: Promise<void> } | null = null;
  /** What the current agent's sessions say the cluster wants this node to be. */
  #desiredRole = new DesiredRole();
  /** Role changes that failed in a row; the next attempt backs off accordingly. */
  #roleChangeFailures = 0;
  /** Every manager's reachability as the leader last told the current agent's session. */
  #leaderReachability: ReadonlyMap<string, ManagerStatus["reachability"]> = new Map();

  constructor(options: SwarmNodeOptions) {
    this.#options = options;
    this.#log = options.logger.child({ component: "swarm" });
  }

  /** What every manager start of this daemon shares: request forwarding and raft's snapshot pace. */
  #managerRuntime(): { forward: ForwardExecutor; raftSnapshotEveryEntries?: number; raftSnapshotCatchUpEntries?: number } {
    const interval = this.#options.raftSnapshotInterval;
    if (interval === null) return { forward: this.#options.forward };
    // Raft's default keeps half an interval of entries behind a snapshot for slow followers.
    return { forward: this.#options.forward, raftSnapshotEveryEntries: interval, raftSnapshotCatchUpEntries: Math.floor(interval / 2) };
  }

  /** Resumes the swarm role saved on disk (manager, else worker), or serves plain Health. */
  async start(options: { signal?: AbortSignal } = {}): Promise<void> {
    const { dataDir } = this.#options;
    if (await hasManagerState(dataDir, options)) {
      const manager = await restartManager({ dataDir, logger: this.#options.logger, ...this.#managerRuntime(), ...options });
      this.#options.grpc.preferPort(portOf(manager.advertiseAddress));
      await this.#becomeManager(manager);
      this.#startRoleWatch();
      this.#log.info({ nodeId: manager.nodeId, clusterId: manager.clusterId }, "resumed as a swarm manager");
      return;
    }
    const worker = await loadWorkerState(dataDir);
    await this.#options.grpc.serve({ nodeId: worker?.nodeId ?? this.#options.localNodeId });
    if (worker === undefined) return;
    const credentials = channelCredentials({ ...worker.material, clusterId: worker.clusterId });
    const agent = await this.#startAgent(worker.nodeId, worker.managers, credentials);
    this.#state = { kind: "worker", nodeId: worker.nodeId, clusterId: worker.clusterId, agent };
    this.#startRoleWatch();
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
    if (this.#state.kind === "none") return { state: "inactive", nodeAddr: "", controlAvailable: false, clusterId: "", error: "" };
    const nodeAddr = this.#state.kind === "manager" ? hostOfAddress(this.#state.manager.advertiseAddress) : this.#grpcHost();
    return { state: "active", nodeAddr, controlAvailable: this.#state.kind === "manager", clusterId: this.clusterId(), error: "" };
  }

  /** Whether REST writes must go to the leader: this node is a manager that does not lead. */
  forwardsWrites(): boolean {
    return this.#state.kind === "manager" && !this.#state.manager.isLeader();
  }

  /**
   * Before a cluster read on a follower manager: waits until its replica has every write
   * committed so far, so a read through any manager sees what was acknowledged before it
   * (swarm gets this by proxying every call to the leader). The leader reads its own store.
   */
  async readBarrier(options: { signal?: AbortSignal } = {}): Promise<void> {
    if (this.#state.kind !== "manager" || this.#state.manager.isLeader()) return;
    await this.#state.manager.readBarrier(options);
  }

  /** Replays a REST request on the leader. UnavailableError when this node is not a manager. */
  forwardToLeader(request: ForwardedRequest, options: { signal?: AbortSignal } = {}): Promise<ForwardedResponse> {
    const state = this.#state;
    if (state.kind !== "manager") return Promise.reject(new UnavailableError(notManagerMessages[state.kind]));
    return state.manager.forwardToLeader(request, options);
  }

  /** Service and task logs through this manager's log broker (the leader's, relayed, on a follower). */
  async *logs(selector: LogSelector, options: ServiceLogOptions): AsyncGenerator<ServiceLogMessage> {
    const state = this.#state;
    if (state.kind !== "manager") throw new UnavailableError(notManagerMessages[state.kind]);
    yield* state.logs.logs(selector, options);
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
    if (request.forceNewCluster) return this.#serialise(() => this.#forceNewCluster(request, options));
    return this.#serialise(async () => {
      this.#refuseIfInSwarm();
      this.#logListenAddress(request.listenAddr);
      const advertiseAddress = this.#advertiseAddress(request.advertiseAddr);
      const manager = await initManager({
        dataDir: this.#options.dataDir,
        logger: this.#options.logger,
        advertiseAddress,
        // Docker names the cluster "default" when the request does not.
        clusterSpec: { ...request.spec, name: typeof request.spec.name === "string" && request.spec.name !== "" ? request.spec.name : "default" },
        availability: request.availability,
        ...this.#managerRuntime(),
        ...options,
      });
      await this.#becomeManager(manager);
      this.#log.info({ nodeId: manager.nodeId, clusterId: manager.clusterId, advertiseAddress }, "swarm initialised");
      return manager.nodeId;
    });
  }

  /**
   * `swarm init --force-new-cluster`: this manager's raft state is rewritten so that it is
   * the only voter, keeping the whole store, and the manager starts again on it. Its task
   * containers keep running (the agent re-adopts them). When the rewrite fails, the manager
   * is started again as it was.
   */
  async #forceNewCluster(request: SwarmInitRequest, options: { signal?: AbortSignal }): Promise<string> {
    const state = this.#state;
    const { dataDir } = this.#options;
    if (state.kind === "worker") {
      throw new FailedPreconditionError("this node is a worker: run --force-new-cluster on a manager, whose data holds the cluster's state");
    }
    if (state.kind === "none" && !(await hasManagerState(dataDir, options))) {
      throw new FailedPreconditionError('this node holds no manager state to recover from: "shoal swarm init" starts a new swarm instead');
    }
    const advertiseAddress = request.advertiseAddr === "" ? undefined : this.#advertiseAddress(request.advertiseAddr);
    if (state.kind === "manager") {
      this.#state = { kind: "none" };
      await state.agent.stop();
      state.logs.close();
      await state.manager.close();
    }
    let forced: ForcedCluster | undefined;
    let failure: unknown;
    try {
      forced = await forceNewManagerCluster({ dataDir, logger: this.#options.logger, ...(advertiseAddress === undefined ? {} : { advertiseAddress }), ...options });
    } catch (error) {
      failure = error;
    }
    const manager = await restartManager({ dataDir, logger: this.#options.logger, ...this.#managerRuntime() });
    await this.#becomeManager(manager);
    if (forced === undefined) throw failure;
    // The one voter elects itself within an election timeout; writes answer only then.
    await this.#waitForLeader(manager, options.signal);
    this.#log.warn({ nodeId: manager.nodeId, removed: forced.removedManagers.map((member) => member.nodeId) }, "forced a new cluster with this manager as its only member");
    return manager.nodeId;
  }

  swarmJoin(request: SwarmJoinRequest, options: { signal?: AbortSignal } = {}): Promise<void> {
    return this.#serialise(async () => {
      this.#refuseIfInSwarm();
      if (request.remoteAddrs.length === 0) throw new InvalidArgumentError("give the address of a manager to join through");
      this.#logListenAddress(request.listenAddr);
      const advertiseAddress = this.#advertiseAddress(request.advertiseAddr);
      const host = hostOfAddress(advertiseAddress);
      // The token does not say its role: the CA's answer does, and a manager certificate
      // goes on to joinManager as it is.
      const { address, credentials: joined } = await firstJoin(request, host, options.signal);
      if (joined.identity.role === "manager") {
        const manager = await joinManager({
          dataDir: this.#options.dataDir,
          logger: this.#options.logger,
          advertiseAddress,
          remoteAddresses: request.remoteAddrs,
          joinToken: request.joinToken,
          credentials: { value: joined, address },
          ...this.#managerRuntime(),
          ...options,
        });
        await this.#becomeManager(manager);
        await this.#waitForLeader(manager, options.signal);
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
      const failures = await removeTaskContainers(this.#options.engine.containers, this.#log);
      if (failures > 0) throw new UnavailableError(`left the swarm, but ${failures} task containers could not be removed: remove them with "shoal container rm"`);
      this.#log.info({ role: state.kind }, "left the swarm");
    });
  }

  joinTokens(): JoinTokens {
    return this.#manager().joinTokens();
  }

  rotateJoinToken(role: NodeRole, options: { signal?: AbortSignal } = {}): Promise<JoinTokens> {
    return this.#manager().rotateJoinToken(role, options);
  }

  /**
   * The manager's own view, which is first-hand only for itself and (on a follower) the
   * leader; for the other managers a follower shows what the leader reported on its
   * agent's live session, as swarm's followers show the leader's view.
   */
  managerStatus(nodeId: string): ManagerStatus | undefined {
    const state = this.#state;
    if (state.kind !== "manager") return undefined;
    const status = state.manager.managerStatus(nodeId);
    if (status?.reachability !== "unknown" || state.agent.connectedTo === null) return status;
    return { ...status, reachability: this.#leaderReachability.get(nodeId) ?? "unknown" };
  }

  /** Stops the agent and the manager; swarm state stays on disk for the next start. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#stopRoleWatch();
    await this.#transition.catch(() => undefined);
    const state = this.#state;
    this.#state = { kind: "none" };
    if (state.kind !== "none") await state.agent.stop();
    if (state.kind === "manager") state.logs.close();
    if (state.kind === "manager") await state.manager.close();
    await this.#options.grpc.close();
  }

  /** Runs one transition at a time; the role watch stops during it and restarts for the resulting role. */
  #serialise<T>(work: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new UnavailableError("the daemon is shutting down"));
    const next = this.#transition
      .catch(() => undefined)
      .then(async () => {
        await this.#stopRoleWatch();
        try {
          return await work();
        } finally {
          if (!this.#closed) this.#startRoleWatch();
        }
      });
    this.#transition = next;
    return next;
  }

  /**
   * Carries out `node promote` (a worker) or `node demote` (a manager) as soon as it is
   * known: a worker hears its desired role from its session with the leader, a manager
   * from its own store replica's change events. Neither polls.
   */
  #startRoleWatch(): void {
    const state = this.#state;
    if (state.kind === "none" || this.#roleWatch !== null) return;
    const controller = new AbortController();
    const { clock, dataDir } = this.#options;
    // The count is updated inside the transition, before #serialise starts the next watch with it.
    const carryOut = (change: () => Promise<void>): void => {
      this.#serialise(async () => {
        try {
          await change();
          this.#roleChangeFailures = 0;
        } catch (error) {
          this.#roleChangeFailures += 1;
          throw error;
        }
      }).catch((error: unknown) => this.#log.warn({ err: errorMessage(error), failures: this.#roleChangeFailures }, "the role change failed; it is retried"));
    };
    const common = {
      failures: this.#roleChangeFailures,
      sleep: (ms: number, options: { signal: AbortSignal }): Promise<void> => clock.sleep(ms, options),
      logger: this.#log,
      signal: controller.signal,
    };
    const desired = this.#desiredRole;
    const done =
      state.kind === "manager"
        ? watchRole({
            ...common,
            wake: (signal) => waitForDemotion(state.manager, signal),
            probe: () => undefined,
            onChange: () => carryOut(() => this.#demote()),
          })
        : watchRole({
            ...common,
            wake: (signal) => desired.waitFor("manager", signal),
            probe: async (signal): Promise<Promotion> => {
              const worker = await loadWorkerState(dataDir);
              if (worker === undefined) throw new FailedPreconditionError("this worker's swarm state is gone from disk");
              // The leader the session runs with has the promotion committed; ask its CA first.
              const session = state.agent.connectedTo;
              const managers = session === null ? worker.managers : [session, ...worker.managers.filter((address) => address !== session)];
              return workerPromotion({ managers, current: worker.material, host: this.#grpcHost(), signal });
            },
            onChange: (promotion) => carryOut(() => this.#promote(promotion)),
          });
    this.#roleWatch = { controller, done };
  }

  async #stopRoleWatch(): Promise<void> {
    const watch = this.#roleWatch;
    this.#roleWatch = null;
    watch?.controller.abort();
    await watch?.done;
  }

  /**
   * `node demote` of this manager: a worker certificate from the CA, then out of raft (the
   * leader hands leadership over first), then the agent runs on as a worker's. Its task
   * containers keep running. When raft refuses, the node stays a manager and retries.
   */
  async #demote(): Promise<void> {
    const state = this.#state;
    if (state.kind !== "manager" || !managerDemoted(state.manager)) return;
    const { manager } = state;
    const managers = otherManagerAddresses(manager);
    if (managers.length === 0) throw new FailedPreconditionError("the last manager cannot become a worker");
    const credentials = await demotedCredentials(manager);
    await manager.leave({ force: false });
    this.#state = { kind: "none" };
    await state.agent.stop();
    state.logs.close();
    await this.#becomeWorker({ nodeId: manager.nodeId, clusterId: manager.clusterId, managers, material: credentials });
    this.#log.info({ nodeId: manager.nodeId }, "demoted: this node left raft and runs on as a worker");
  }

  /** `node promote` of this worker: join raft with the manager certificate the CA issued. */
  async #promote(promotion: Promotion): Promise<void> {
    const state = this.#state;
    const worker = await loadWorkerState(this.#options.dataDir);
    if (state.kind !== "worker" || worker === undefined) return;
    const manager = await joinManager({
      dataDir: this.#options.dataDir,
      logger: this.#options.logger,
      advertiseAddress: this.#advertiseAddress(""),
      remoteAddresses: [promotion.address, ...worker.managers.filter((address) => address !== promotion.address)],
      joinToken: "",
      credentials: { value: promotion.credentials, address: promotion.address },
      ...this.#managerRuntime(),
    });
    this.#state = { kind: "none" };
    await state.agent.stop();
    await removeWorkerState(this.#options.dataDir);
    await this.#becomeManager(manager);
    await this.#waitForLeader(manager, undefined);
    this.#log.info({ nodeId: manager.nodeId }, "promoted: this node joined raft and serves as a manager");
  }

  /** Saves the worker state and runs the agent with worker credentials against `managers`. */
  async #becomeWorker(worker: WorkerSwarmState): Promise<void> {
    await saveWorkerState(this.#options.dataDir, worker);
    await this.#options.grpc.serve({ nodeId: worker.nodeId });
    const agent = await this.#startAgent(worker.nodeId, worker.managers, channelCredentials({ ...worker.material, clusterId: worker.clusterId }));
    this.#state = { kind: "worker", nodeId: worker.nodeId, clusterId: worker.clusterId, agent };
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

  /**
   * The request's address, else --advertise-addr, else the bound gRPC address (which must
   * be routable). An address without a port gets the gRPC listener's, as `docker swarm init
   * --advertise-addr 10.0.0.5` gets its listen port.
   */
  #advertiseAddress(requested: string): string {
    const given = requested !== "" ? requested : (this.#options.advertiseAddr ?? this.#options.grpc.address);
    const listenPort = /:(\d{1,5})$/.exec(this.#options.grpc.address)?.[1];
    const chosen = listenPort !== undefined && /^(\[[^\]]+\]|[^:\s]+)$/.test(given) ? `${given}:${listenPort}` : given;
    const host = hostOfAddress(chosen);
    if (host === "0.0.0.0" || host === "::") {
      throw new InvalidArgumentError(`the gRPC server listens on ${chosen}, which other nodes cannot reach: give --advertise-addr`);
    }
    return chosen;
  }

  /** Serves the manager and runs its agent. */
  async #becomeManager(manager: Manager): Promise<void> {
    try {
      const logs = createManagerLogs({ manager, logger: this.#options.logger, clock: this.#options.clock });
      await this.#options.grpc.serve({ nodeId: manager.nodeId, services: [...manager.grpcServices(), logs.grpcService()], credentials: manager.serverCredentials() });
      const agent = await this.#startAgent(manager.nodeId, [manager.advertiseAddress], manager.channelCredentials());
      this.#state = { kind: "manager", manager, agent, logs };
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

  async #startAgent(nodeId: string, managers: readonly string[], credentials: ChannelCredentials): Promise<Agent> {
    const { engine } = this.#options;
    const executor = createEngineExecutor(createEngineAdapter({ containers: engine.containers, images: engine.images }), {
      nodeId,
      engineVersion: shoalVersion,
    });
    // A fresh one per agent: a role heard by a previous agent (before a demotion) is stale.
    const desired = new DesiredRole();
    this.#desiredRole = desired;
    this.#leaderReachability = new Map();
    const created = createAgent({
      dataDir: this.#options.dataDir,
      managers,
      executor,
      logger: this.#options.logger,
      channelCredentials: credentials,
      logContainers: engine.containers,
      onDesiredRole: (role) => desired.set(role),
      onManagerReachability: (reachability) => {
        if (this.#desiredRole === desired) this.#leaderReachability = reachability;
      },
    });
    const agent = withNetworkAgent(created, { logger: this.#options.logger, channelCredentials: credentials });
    await agent.start();
    return agent;
  }
}

function portOf(address: string): number {
  return Number(address.slice(address.lastIndexOf(":") + 1));
}

/** Asks each manager in turn for a certificate; only an outage moves on to the next one. */
async function firstJoin(request: SwarmJoinRequest, host: string, signal: AbortSignal | undefined): Promise<{ address: string; credentials: NodeCredentials }> {
  let lastError: unknown;
  for (const address of request.remoteAddrs) {
    throwIfAborted(signal);
    try {
      const credentials = await joinWithToken({
        address,
        token: request.joinToken,
        addresses: [host],
        availability: request.availability,
        ...(signal === undefined ? {} : { signal }),
      });
      return { address, credentials };
    } catch (error) {
      if (!(error instanceof UnavailableError)) throw error;
      lastError = error;
    }
  }
  throw lastError;
}
