import type { ChannelCredentials, ServerCredentials } from "@grpc/grpc-js";

import type { Clock } from "../../common/clock.js";
import { FailedPreconditionError, UnavailableError, errorMessage } from "../../common/errors.js";
import type { Logger } from "../../common/logger.js";
import { createGrpcRaftTransport, NotLeaderError, RaftNode, tickMsDefault } from "../../raft/index.js";
import type { RaftMember, RaftNodeStatus, RaftPeerCall, RaftTransport } from "../../raft/index.js";
import type { GrpcService } from "../../rpc/server.js";
import {
  createPeerAuthenticator,
  nodeTrustFromPem,
  renewableChannelCredentials,
  saveTlsMaterial,
  serverCredentials,
  TlsMaterialSource,
  type AuthenticatedCall,
  type PeerAuthenticator,
  type TlsMaterial,
} from "../../rpc/tls/index.js";
import { CertificateRenewer, createNodeCaService, issueLocalNodeMaterial, type CertificateAuthority } from "../ca/index.js";
import { rotateJoinToken as rotateToken } from "../ca/index.js";
import { Allocator } from "../allocator/index.js";
import { createControlApi, type ControlApi, type ManagerStatus } from "../controlapi/index.js";
import { createDispatcher, type Dispatcher } from "../dispatcher/index.js";
import { clusterDefaults, createIdGenerator, type JoinTokens, type NodeRole } from "../objects/index.js";
import { runOrchestrators } from "../orchestrator/index.js";
import { Scheduler } from "../scheduler/index.js";
import { MemoryStore } from "../store/index.js";
import { guardDemotions } from "./demotion-guard.js";
import { leaveRaft } from "./leave.js";
import { LeadershipRunner } from "./leadership.js";
import { MemberChanges } from "./member-changes.js";
import { MemberDirectory, type ManagerMember } from "./member-directory.js";
import {
  createForwardService,
  createMembershipService,
  requestForward,
  type ForwardedRequest,
  type ForwardedResponse,
  type ForwardExecutor,
  type JoinAnswer,
} from "./membership-service.js";
import { proxyNodeCaJoins } from "./node-ca-proxy.js";
import { notingPeerContacts, PeerContacts } from "./peer-contact.js";
import { createRaftProposer, ManagerStateMachine } from "./replicated-state.js";
import { saveManagerState, type ManagerState, type SwarmPaths } from "./state-file.js";

/**
 * Raft ticks (100 ms each) before a follower that stopped hearing from its leader campaigns;
 * the timeout is randomised over [8, 16) ticks. Below raft's default of 10 so that a dead
 * leader is replaced well within 2 s; pre-vote and check-quorum keep a slow tick on a busy
 * host from unseating a live leader.
 */
export const managerElectionTicks = 8;

/**
 * A running manager: raft, the replicated store, the CA and, while it leads, the
 * orchestrators, scheduler, dispatcher and learner promotion. The daemon serves
 * grpcServices() on one mTLS server made with serverCredentials(), on the address this
 * manager advertises, and implements the REST routes' ClusterControl with the rest.
 */
export interface Manager {
  readonly nodeId: string;
  readonly clusterId: string;
  readonly raftId: number;
  /** "host:port" of this manager's gRPC server, as other managers reach it. */
  readonly advertiseAddress: string;
  /** The replicated store (reads are local; writes go through raft and need the leader). */
  readonly store: MemoryStore;
  /** Always true: a Manager exists only on manager nodes. */
  isManager(): boolean;
  /** Whether this manager leads and has started the leader-only components. */
  isLeader(): boolean;
  /** The leader's gRPC address, undefined when no leader is known or this manager leads. */
  leaderAddress(): string | undefined;
  /** The control API over this manager's store; its writes fail UnavailableError (naming the leader) on a follower. */
  controlApi(): ControlApi;
  /** The cluster's join tokens. FailedPreconditionError before the cluster object is replicated here. */
  joinTokens(): JoinTokens;
  /** Replaces the token of `role` (the old one stops working) and returns both; needs the leader. */
  rotateJoinToken(role: NodeRole, options?: { signal?: AbortSignal }): Promise<JoinTokens>;
  /** Docker's ManagerStatus for a node that is a raft member, undefined otherwise. */
  managerStatus(nodeId: string): ManagerStatus | undefined;
  /** The managers of the directory that have not left (learners included). */
  managers(): ManagerMember[];
  raftStatus(): RaftNodeStatus;
  /** Raft transport, NodeCA, Dispatcher, RaftMembership and ControlForward, to serve on one server. */
  grpcServices(): GrpcService[];
  /** mTLS server credentials with this node's (renewed) certificate; client certificates are checked per RPC. */
  serverCredentials(): ServerCredentials;
  /** Client credentials for calling other managers as this node (new connections use the renewed certificate). */
  channelCredentials(): ChannelCredentials;
  /** This node's current certificate, key and root CA (the daemon's worker agent uses them for its session). */
  tlsMaterial(): TlsMaterial;
  /** Sets what runs REST requests other managers forward here (the daemon's fastify inject). */
  setForwardExecutor(executor: ForwardExecutor | null): void;
  /** Replays a REST request on the leader. UnavailableError when no leader is known or it cannot be reached. */
  forwardToLeader(request: ForwardedRequest, options?: { signal?: AbortSignal }): Promise<ForwardedResponse>;
  /**
   * Resolves once this manager's store holds everything the cluster had committed when it
   * was called (raft ReadIndex, confirmed by the leader): a read after it sees every write
   * acknowledged before it, on any manager. UnavailableError without a leader.
   */
  readBarrier(options?: { signal?: AbortSignal }): Promise<void>;
  /**
   * Leaves raft for good: hands leadership over first when leading, asks the leader to
   * remove this member, then closes and deletes the swarm state. The last manager only
   * leaves with `force` (FailedPreconditionError otherwise): its cluster state is lost.
   */
  leave(options?: { force?: boolean; signal?: AbortSignal }): Promise<void>;
  /** Stops everything and leaves the data on disk (restartManager picks it up). Idempotent. */
  close(): Promise<void>;
}

/** What every way of starting a manager shares. */
export interface ManagerRuntimeOptions {
  readonly logger: Logger;
  readonly clock: Clock;
  readonly randomBytes: (size: number) => Uint8Array;
  /** Raft timing; RaftNode's defaults (100 ms ticks, 10-tick elections) when absent. */
  readonly raftTickMs?: number;
  readonly raftElectionTicks?: number;
  /** Raft snapshot cadence and the entries kept behind a snapshot; RaftNode's defaults when absent. */
  readonly raftSnapshotEveryEntries?: number;
  readonly raftSnapshotCatchUpEntries?: number;
  readonly forward?: ForwardExecutor;
}

/** What the start functions hand the core once the node's identity and material are settled. */
export interface ManagerStartInput {
  readonly paths: SwarmPaths;
  readonly state: ManagerState;
  readonly authority: CertificateAuthority;
  readonly material: TlsMaterial;
  readonly bootstrap: boolean;
  /** Host names and IPs for the node certificate (renewals keep them). */
  readonly certificateAddresses: readonly string[];
}

function toRaftMembers(members: readonly ManagerMember[]): RaftMember[] {
  return members.filter((member) => member.suffrage !== "removed").map((member) => ({ id: member.raftId, address: member.address }));
}

export class ManagerImpl implements Manager {
  readonly nodeId: string;
  readonly clusterId: string;
  readonly raftId: number;
  readonly advertiseAddress: string;
  readonly store: MemoryStore;
  readonly #paths: SwarmPaths;
  readonly #runtime: ManagerRuntimeOptions;
  readonly #logger: Logger;
  readonly #authority: CertificateAuthority;
  readonly #tls: TlsMaterialSource;
  readonly #peers: PeerAuthenticator;
  readonly #credentials: ChannelCredentials;
  readonly #directory: MemberDirectory;
  readonly #controlApi: ControlApi;
  readonly #dispatcher: Dispatcher;
  readonly #certificateAddresses: readonly string[];
  readonly #background = new AbortController();
  readonly #tasks: Promise<void>[] = [];
  #raftNode: RaftNode | null = null;
  #transport: RaftTransport | null = null;
  readonly #contacts: PeerContacts;
  #leadership: LeadershipRunner | null = null;
  #forward: ForwardExecutor | null;
  #services: GrpcService[] = [];
  #closing: Promise<void> | null = null;
  /** The raft term this manager was last confirmed leader in; stamped on what the dispatcher sends. */
  #leaderTerm = 0;

  private constructor(input: ManagerStartInput, runtime: ManagerRuntimeOptions) {
    const { state } = input;
    this.nodeId = state.nodeId;
    this.clusterId = state.clusterId;
    this.raftId = state.raftId;
    this.advertiseAddress = state.advertiseAddress;
    this.#paths = input.paths;
    this.#runtime = runtime;
    this.#logger = runtime.logger.child({ component: "manager", nodeId: state.nodeId, raftId: state.raftId });
    this.#authority = input.authority;
    this.#certificateAddresses = input.certificateAddresses;
    this.#tls = new TlsMaterialSource(input.material);
    this.#peers = createPeerAuthenticator(nodeTrustFromPem({ caPem: input.material.caPem, clock: runtime.clock, clusterId: state.clusterId }));
    this.#credentials = renewableChannelCredentials({ source: this.#tls, clusterId: state.clusterId });
    this.#directory = new MemberDirectory(state.managers);
    this.#contacts = new PeerContacts(runtime.clock);
    this.#forward = runtime.forward ?? null;
    this.store = new MemoryStore({ proposer: createRaftProposer(() => this.#raftNode), logger: runtime.logger, clock: runtime.clock });
    this.#controlApi = guardDemotions(createControlApi({ store: this.store, logger: runtime.logger, clock: runtime.clock }), {
      directory: this.#directory,
      selfRaftId: state.raftId,
      credentials: this.#credentials,
      clock: runtime.clock,
    });
    this.#dispatcher = createDispatcher({
      store: this.store,
      logger: runtime.logger,
      clock: runtime.clock,
      identify: (call) => {
        const identity = this.#peers.peerIdentity(call);
        return identity === null ? null : { nodeId: identity.nodeId, role: identity.role };
      },
      leaderAddress: () => this.leaderAddress() ?? null,
      managers: () =>
        this.#directory.active().map((member) => ({ nodeId: member.nodeId, addr: member.address, reachability: this.managerStatus(member.nodeId)?.reachability ?? "unknown" })),
      term: () => this.#leaderTerm,
    });
  }

  /** Starts raft (replaying or bootstrapping its log), the services and the leadership runner. */
  static async start(input: ManagerStartInput, runtime: ManagerRuntimeOptions): Promise<ManagerImpl> {
    const manager = new ManagerImpl(input, runtime);
    try {
      await manager.#start(input.bootstrap);
    } catch (error) {
      await manager.close();
      throw error;
    }
    return manager;
  }

  async #start(bootstrap: boolean): Promise<void> {
    const { logger, clock } = this.#runtime;
    const transport = notingPeerContacts(
      createGrpcRaftTransport({
        id: this.raftId,
        logger,
        clock,
        channelCredentials: this.#credentials,
        authorizePeer: (call) => this.#authorizeRaftPeer(call),
      }),
      this.#contacts,
    );
    this.#transport = transport;
    const stateMachine = new ManagerStateMachine({ store: this.store, directory: this.#directory });
    const raftNode = await RaftNode.start({
      id: this.raftId,
      dataDir: this.#paths.raft,
      stateMachine,
      transport,
      logger,
      clock,
      members: toRaftMembers(this.#directory.all()),
      bootstrap,
      ...(this.#runtime.raftTickMs === undefined ? {} : { tickMs: this.#runtime.raftTickMs }),
      electionTicks: this.#runtime.raftElectionTicks ?? managerElectionTicks,
      ...(this.#runtime.raftSnapshotEveryEntries === undefined ? {} : { snapshotEveryEntries: this.#runtime.raftSnapshotEveryEntries }),
      ...(this.#runtime.raftSnapshotCatchUpEntries === undefined ? {} : { snapshotCatchUpEntries: this.#runtime.raftSnapshotCatchUpEntries }),
    });
    this.#raftNode = raftNode;
    const members = new MemberChanges({
      raftNode,
      directory: this.#directory,
      credentials: this.#credentials,
      clock,
      logger,
      randomBytes: this.#runtime.randomBytes,
      abandoned: (member) => {
        const node = this.store.view((tx) => tx.get("node", member.nodeId));
        return node?.spec.role === "worker" && node.status.state === "down";
      },
    });
    this.#services = this.#createServices(transport, members);
    const leadership = new LeadershipRunner({
      raftNode,
      clock,
      logger,
      components: [
        (signal) => runOrchestrators({ store: this.store, logger, clock }, signal),
        (signal) => new Scheduler({ store: this.store, logger, clock }).run(signal),
        (signal) => new Allocator({ store: this.store, logger, clock }).run(signal),
        (signal) => members.run(signal),
      ],
      onTermStart: (term) => {
        this.#leaderTerm = term;
        this.#dispatcher.start();
      },
      onTermEnd: () => this.#dispatcher.stop(),
    });
    this.#leadership = leadership;
    leadership.start();
    this.#tasks.push(this.#runRenewer(this.#background.signal));
  }

  #createServices(transport: RaftTransport, members: MemberChanges): GrpcService[] {
    const { logger, clock, randomBytes } = this.#runtime;
    const requireManager = (call: AuthenticatedCall): { nodeId: string } => this.#peers.requireRole(call, "manager");
    const membership = createMembershipService({
      logger,
      host: {
        requireManager,
        join: async (request) => this.#answerJoin(await members.join(request)),
        leave: (request) => members.leave(request),
        progress: () => ({ raftId: this.raftId, applied: this.raftStatus().applied }),
        leaderAddress: () => this.leaderAddress(),
      },
    });
    const forward = createForwardService({
      logger,
      requireManager,
      execute: () => this.#forward,
      refuseUnlessLeader: () => {
        if (!this.isLeader()) {
          const status = this.raftStatus();
          throw new NotLeaderError(status.leader, status.members.get(status.leader));
        }
      },
    });
    const nodeCa = proxyNodeCaJoins({
      service: createNodeCaService({ store: this.store, authority: this.#authority, logger, clock, newNodeId: createIdGenerator(randomBytes) }),
      leaderAddress: () => this.leaderAddress(),
      credentials: this.#credentials,
      clock,
      logger,
    });
    return [transport.grpcService(), nodeCa, this.#dispatcher.grpcService(), membership, forward];
  }

  #answerJoin(raftId: number): JoinAnswer {
    return {
      raftId,
      members: this.#directory.active(),
      clusterId: this.clusterId,
      caKeyPem: this.#authority.keyPem(),
      caCertPem: this.#authority.certPem,
    };
  }

  /** Raft peers are managers of this cluster whose certificate's node id holds the raft id. */
  #authorizeRaftPeer(call: RaftPeerCall): number | null {
    const identity = this.#peers.peerIdentity(call);
    if (identity === null || identity.role !== "manager") return null;
    const member = this.#directory.byNodeId(identity.nodeId);
    if (member === undefined) {
      this.#logger.debug({ peer: identity.nodeId }, "refused raft traffic from a manager that is not a member");
      return null;
    }
    return member.raftId;
  }

  /** Renews this manager's own certificate with its own CA: no other manager is needed. */
  async #runRenewer(signal: AbortSignal): Promise<void> {
    const renewer = new CertificateRenewer({
      source: this.#tls,
      clock: this.#runtime.clock,
      logger: this.#runtime.logger,
      renew: () => {
        const cluster = this.store.view((tx) => tx.find("cluster"))[0];
        return Promise.resolve(
          issueLocalNodeMaterial(this.#authority, {
            nodeId: this.nodeId,
            role: "manager",
            clusterId: this.clusterId,
            addresses: this.#certificateAddresses,
            validityMs: cluster?.spec.nodeCertExpiryMs ?? clusterDefaults.nodeCertExpiryMs,
          }),
        );
      },
      save: (material, options) => saveTlsMaterial(this.#paths.certificates, material, options),
    });
    await renewer.run(signal);
  }

  #node(): RaftNode {
    if (this.#raftNode === null) throw new UnavailableError("this manager's raft node is not running");
    return this.#raftNode;
  }

  /** Resolves once this manager leads with its components running. */
  waitUntilLeading(signal: AbortSignal): Promise<void> {
    if (this.#leadership === null) return Promise.reject(new UnavailableError("this manager is not running"));
    return this.#leadership.waitUntilLeading(signal);
  }

  isManager(): boolean {
    return true;
  }

  isLeader(): boolean {
    return this.#leadership?.leading === true && this.raftStatus().role === "leader";
  }

  leaderAddress(): string | undefined {
    if (this.#raftNode === null) return undefined;
    const status = this.#raftNode.status();
    if (status.leader === 0 || status.leader === this.raftId) return undefined;
    return status.members.get(status.leader) ?? this.#directory.byRaftId(status.leader)?.address;
  }

  controlApi(): ControlApi {
    return this.#controlApi;
  }

  joinTokens(): JoinTokens {
    const cluster = this.store.view((tx) => tx.find("cluster"))[0];
    if (cluster === undefined) throw new FailedPreconditionError("this manager has not received the cluster object yet: retry shortly");
    return { ...cluster.joinTokens };
  }

  async rotateJoinToken(role: NodeRole, options: { signal?: AbortSignal } = {}): Promise<JoinTokens> {
    const tokens = rotateToken(this.joinTokens(), role, { randomBytes: this.#runtime.randomBytes });
    const cluster = await this.#controlApi.setJoinTokens(tokens, options);
    return { ...cluster.joinTokens };
  }

  managerStatus(nodeId: string): ManagerStatus | undefined {
    const member = this.#directory.byNodeId(nodeId);
    if (this.#raftNode === null) return undefined;
    if (member === undefined) return this.#formerMemberStatus(nodeId);
    const status = this.#raftNode.status();
    const leader = status.leader === member.raftId;
    return { leader, reachability: this.#reachability(member.raftId, status), addr: member.address };
  }

  /**
   * First-hand only: a leader hears from every member each heartbeat, a follower only from
   * the leader, so a follower says "unknown" of the other followers. A member not heard from
   * within an election timeout is unreachable (raft's own check-quorum window).
   */
  #reachability(raftId: number, status: RaftNodeStatus): ManagerStatus["reachability"] {
    if (raftId === this.raftId) return "reachable";
    if (status.role !== "leader" && status.leader !== raftId) return "unknown";
    const windowMs = (this.#runtime.raftTickMs ?? tickMsDefault) * (this.#runtime.raftElectionTicks ?? managerElectionTicks);
    return this.#contacts.heardWithin(raftId, windowMs) ? "reachable" : "unreachable";
  }

  /**
   * A node the cluster still wants as a manager but that raft no longer counts (after
   * --force-new-cluster): unreachable, as docker shows it, until it is demoted or removed.
   */
  #formerMemberStatus(nodeId: string): ManagerStatus | undefined {
    const node = this.store.view((tx) => tx.get("node", nodeId));
    if (node?.spec.role !== "manager") return undefined;
    const former = this.#directory.all().find((member) => member.nodeId === nodeId);
    return former === undefined ? undefined : { leader: false, reachability: "unreachable", addr: former.address };
  }

  managers(): ManagerMember[] {
    return this.#directory.active();
  }

  raftStatus(): RaftNodeStatus {
    return this.#node().status();
  }

  grpcServices(): GrpcService[] {
    return [...this.#services];
  }

  serverCredentials(): ServerCredentials {
    return serverCredentials({ source: this.#tls, requireClientCert: false });
  }

  channelCredentials(): ChannelCredentials {
    return this.#credentials;
  }

  setForwardExecutor(executor: ForwardExecutor | null): void {
    this.#forward = executor;
  }

  async forwardToLeader(request: ForwardedRequest, options: { signal?: AbortSignal } = {}): Promise<ForwardedResponse> {
    const address = this.leaderAddress();
    if (address === undefined) {
      if (this.isLeader()) throw new UnavailableError("this manager is the leader: serve the request locally");
      throw new UnavailableError(this.#noLeaderMessage());
    }
    return requestForward({ address, credentials: this.#credentials, clock: this.#runtime.clock, signal: options.signal, request });
  }

  async readBarrier(options: { signal?: AbortSignal } = {}): Promise<void> {
    try {
      await this.#node().readIndex(options);
    } catch (error) {
      if (!(error instanceof UnavailableError)) throw error;
      throw new UnavailableError(this.#noLeaderMessage(), { cause: error });
    }
  }

  #noLeaderMessage(): string {
    const managers = this.#directory.active().filter((member) => member.suffrage === "voter").length;
    return (
      `the swarm has no leader: quorum is lost or an election is under way (a majority of the ${managers} managers must be reachable). ` +
      'Bring managers back, or if they are lost for good run "shoal swarm init --force-new-cluster" on a surviving manager'
    );
  }

  /** The current TLS material (the renewer may have replaced the one the manager started with). */
  tlsMaterial(): TlsMaterial {
    return this.#tls.material;
  }

  async leave(options: { force?: boolean; signal?: AbortSignal } = {}): Promise<void> {
    await leaveRaft({
      raftNode: this.#node(),
      directory: this.#directory,
      credentials: this.#credentials,
      clock: this.#runtime.clock,
      logger: this.#logger,
      close: () => this.close(),
      paths: this.#paths,
      force: options.force === true,
      signal: options.signal,
    });
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#background.abort(new UnavailableError("the manager is closing"));
    await this.#leadership?.close();
    await this.#dispatcher.stop();
    await Promise.allSettled(this.#tasks);
    const state: ManagerState = {
      clusterId: this.clusterId,
      nodeId: this.nodeId,
      role: "manager",
      raftId: this.raftId,
      advertiseAddress: this.advertiseAddress,
      managers: this.#directory.all(),
    };
    if (this.#raftNode !== null) {
      await this.#raftNode.close();
      // Keep the addresses raft learned for the next start; a write failure only loses hints.
      await saveManagerState(this.#paths, state).catch((error: unknown) => {
        this.#logger.warn({ err: errorMessage(error) }, "could not update state.json with the current managers");
      });
    } else {
      await this.#transport?.close();
    }
    this.store.close();
    this.#logger.info("manager stopped");
  }
}
