import { randomBytes as cryptoRandomBytes } from "node:crypto";
import { rm } from "node:fs/promises";

import { systemClock, type Clock } from "../../common/clock.js";
import { FailedPreconditionError, InvalidArgumentError, UnavailableError, errorMessage, throwIfAborted } from "../../common/errors.js";
import type { Logger } from "../../common/logger.js";
import { channelCredentials, loadTlsMaterial, parsePemCertificates, saveTlsMaterial } from "../../rpc/tls/index.js";
import {
  bootstrapClusterCa,
  certificateAuthorityFromPem,
  joinWithToken,
  loadCertificateAuthority,
  saveCertificateAuthority,
  type NodeCredentials,
} from "../ca/index.js";
import { createIdGenerator, parseClusterSpec, type NodeAvailability } from "../objects/index.js";
import { raftIdMax, type ManagerMember } from "./member-directory.js";
import { ManagerImpl, type Manager, type ManagerRuntimeOptions } from "./manager.js";
import { requestRaftJoin, type ForwardExecutor, type JoinAnswer } from "./membership-service.js";
import { loadManagerState, saveManagerState, swarmPaths, type ManagerState, type SwarmPaths } from "./state-file.js";

/** How long `swarm init` waits for the new one-member raft group to elect this manager. */
export const initLeadershipTimeoutMs = 30_000;

/** Options every way of starting a manager takes. */
export interface ManagerOptions {
  /** The daemon's data directory; the manager keeps everything under `<dataDir>/swarm/`. */
  readonly dataDir: string;
  readonly logger: Logger;
  readonly clock?: Clock;
  readonly randomBytes?: (size: number) => Uint8Array;
  /** Raft timing overrides (tests); RaftNode's defaults otherwise. */
  readonly raftTickMs?: number;
  readonly raftElectionTicks?: number;
  readonly raftSnapshotEveryEntries?: number;
  readonly raftSnapshotCatchUpEntries?: number;
  /** Runs REST requests other managers forward here; settable later with setForwardExecutor. */
  readonly forward?: ForwardExecutor;
  readonly signal?: AbortSignal;
}

export interface InitManagerOptions extends ManagerOptions {
  /** "host:port" other nodes reach this manager's gRPC server at. */
  readonly advertiseAddress: string;
  /** This node's id; a new random one when absent. */
  readonly nodeId?: string;
  /** A ClusterSpecInput (validated here); `{ name: "default" }` when absent. */
  readonly clusterSpec?: unknown;
  readonly availability?: NodeAvailability;
}

export interface JoinManagerOptions extends ManagerOptions {
  readonly advertiseAddress: string;
  /** Managers to ask, "host:port", in order; the first that admits this node wins. */
  readonly remoteAddresses: readonly string[];
  readonly joinToken: string;
  /**
   * A manager certificate the CA already issued for this join (the daemon asks once to
   * learn the token's role): used as is, so that the CA registers this node only once.
   */
  readonly credentials?: { readonly value: NodeCredentials; readonly address: string };
}

function runtimeOf(options: ManagerOptions): ManagerRuntimeOptions {
  return {
    logger: options.logger,
    clock: options.clock ?? systemClock,
    randomBytes: options.randomBytes ?? ((size) => cryptoRandomBytes(size)),
    ...(options.raftTickMs === undefined ? {} : { raftTickMs: options.raftTickMs }),
    ...(options.raftElectionTicks === undefined ? {} : { raftElectionTicks: options.raftElectionTicks }),
    ...(options.raftSnapshotEveryEntries === undefined ? {} : { raftSnapshotEveryEntries: options.raftSnapshotEveryEntries }),
    ...(options.raftSnapshotCatchUpEntries === undefined ? {} : { raftSnapshotCatchUpEntries: options.raftSnapshotCatchUpEntries }),
    ...(options.forward === undefined ? {} : { forward: options.forward }),
  };
}

/** The host part of "host:port" ("[::1]:4242" -> "::1"), for certificate addresses. */
export function hostOfAddress(address: string): string {
  const bracketed = /^\[([^\]]+)\]:\d{1,5}$/.exec(address);
  if (bracketed?.[1] !== undefined) return bracketed[1];
  const match = /^([^:\s]+):\d{1,5}$/.exec(address);
  if (match?.[1] === undefined) throw new InvalidArgumentError(`advertise address "${address}" must be "host:port"`);
  return match[1];
}

async function refuseIfInSwarm(paths: SwarmPaths, signal: AbortSignal | undefined): Promise<void> {
  const state = await loadManagerState(paths, signal === undefined ? {} : { signal });
  if (state !== undefined) {
    throw new FailedPreconditionError(`this node is already part of swarm ${state.clusterId}: leave it first ("shoal swarm leave")`);
  }
}

function newRaftId(randomBytes: (size: number) => Uint8Array): number {
  return Number(Buffer.from(randomBytes(8)).readBigUInt64BE(0) % BigInt(raftIdMax)) + 1;
}

/** Deletes what a failed init or join wrote, so that the user can simply try again. */
async function discardPartialSwarm(paths: SwarmPaths, logger: Logger, error: unknown): Promise<never> {
  await rm(paths.root, { recursive: true, force: true }).catch((cleanup: unknown) => {
    logger.error({ err: errorMessage(cleanup), path: paths.root }, "could not delete a partial swarm state; delete it by hand");
  });
  throw error;
}

/**
 * `swarm init`: a new cluster with a new root CA, a one-member raft group, and the Cluster
 * and this manager's Node written through raft. Resolves once this manager leads.
 * FailedPreconditionError when the node is already in a swarm; InvalidArgumentError for a
 * bad spec or address.
 */
export async function initManager(options: InitManagerOptions): Promise<Manager> {
  const runtime = runtimeOf(options);
  const paths = swarmPaths(options.dataDir);
  throwIfAborted(options.signal);
  const spec = parseClusterSpec(options.clusterSpec ?? { name: "default" }, "spec");
  const host = hostOfAddress(options.advertiseAddress);
  await refuseIfInSwarm(paths, options.signal);
  const newId = createIdGenerator(runtime.randomBytes);
  const clusterId = newId();
  const nodeId = options.nodeId ?? newId();
  let manager: ManagerImpl | undefined;
  try {
    const ca = await bootstrapClusterCa({
      directory: paths.ca,
      clusterId,
      nodeId,
      addresses: [host],
      nodeCertExpiryMs: spec.nodeCertExpiryMs,
      clock: runtime.clock,
      randomBytes: runtime.randomBytes,
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
    await saveTlsMaterial(paths.certificates, ca.material);
    const self: ManagerMember = { raftId: newRaftId(runtime.randomBytes), nodeId, address: options.advertiseAddress, suffrage: "voter" };
    const state: ManagerState = { clusterId, nodeId, role: "manager", raftId: self.raftId, advertiseAddress: options.advertiseAddress, managers: [self] };
    manager = await ManagerImpl.start(
      { paths, state, authority: ca.authority, material: ca.material, bootstrap: true, certificateAddresses: [host] },
      runtime,
    );
    await waitUntilLeading(manager, runtime.clock, options.signal);
    await manager.controlApi().initCluster({
      clusterId,
      spec,
      joinTokens: ca.joinTokens,
      rootCa: ca.rootCa,
      node: {
        id: nodeId,
        spec: { name: "", labels: {}, role: "manager", availability: options.availability ?? "active" },
        status: { state: "ready", addr: host, message: "" },
      },
    });
    await saveManagerState(paths, state);
    return manager;
  } catch (error) {
    await manager?.close();
    return discardPartialSwarm(paths, runtime.logger, error);
  }
}

async function waitUntilLeading(manager: ManagerImpl, clock: Clock, signal: AbortSignal | undefined): Promise<void> {
  const timeout = new AbortController();
  const cancelTimer = clock.setTimer(initLeadershipTimeoutMs, () => timeout.abort(new UnavailableError("timed out")));
  try {
    await manager.waitUntilLeading(signal === undefined ? timeout.signal : AbortSignal.any([signal, timeout.signal]));
  } catch (error) {
    throwIfAborted(signal);
    throw new UnavailableError(`the new raft group did not elect this manager within ${initLeadershipTimeoutMs} ms`, { cause: error });
  } finally {
    cancelTimer();
  }
}

/** Tries each manager in turn; returns the first success, else throws the last error. */
async function firstAnswering<T>(addresses: readonly string[], attempt: (address: string) => Promise<T>): Promise<{ address: string; value: T }> {
  if (addresses.length === 0) throw new InvalidArgumentError("give at least one manager address to join through");
  let lastError: unknown;
  for (const address of addresses) {
    try {
      return { address, value: await attempt(address) };
    } catch (error) {
      // A refusal (bad token, not a manager) will not change at another manager.
      if (!(error instanceof UnavailableError)) throw error;
      lastError = error;
    }
  }
  throw lastError;
}

/** Checks that the CA material the leader sent is the root this node's certificate chains to. */
function authorityFromAnswer(answer: JoinAnswer, credentials: NodeCredentials, runtime: ManagerRuntimeOptions): ReturnType<typeof certificateAuthorityFromPem> {
  const authority = certificateAuthorityFromPem({ certPem: answer.caCertPem, keyPem: answer.caKeyPem, clock: runtime.clock, randomBytes: runtime.randomBytes });
  const [trusted] = parsePemCertificates(credentials.caPem, "the cluster's root CA");
  if (trusted === undefined || !trusted.raw.equals(authority.certDer)) {
    throw new FailedPreconditionError("the leader sent a CA that is not the one the join token pins: check the manager addresses");
  }
  if (answer.clusterId !== credentials.identity.clusterId) {
    throw new FailedPreconditionError(`the leader belongs to cluster ${answer.clusterId}, not ${credentials.identity.clusterId}`);
  }
  return authority;
}

/**
 * `swarm join` with a manager token: a certificate from the cluster's CA (NodeCA, checked
 * against the token's pinned root), then the leader adds this node to raft as a learner
 * (promoted to voter by the leader once caught up), and raft starts here with the members
 * the leader named. Join through the leader: followers refuse with UnavailableError.
 * FailedPreconditionError for a worker token or when already in a swarm.
 */
export async function joinManager(options: JoinManagerOptions): Promise<Manager> {
  const runtime = runtimeOf(options);
  const paths = swarmPaths(options.dataDir);
  const { signal } = options;
  throwIfAborted(signal);
  const host = hostOfAddress(options.advertiseAddress);
  await refuseIfInSwarm(paths, signal);
  const signalOption = signal === undefined ? {} : { signal };
  const joined =
    options.credentials ??
    (await firstAnswering(options.remoteAddresses, (address) => joinWithToken({ address, token: options.joinToken, addresses: [host], ...signalOption })));
  const credentials = joined.value;
  if (credentials.identity.role !== "manager") {
    throw new FailedPreconditionError("this is a worker join token: a manager joins with the manager token (\"shoal swarm join-token manager\")");
  }
  let manager: ManagerImpl | undefined;
  try {
    const clientCredentials = channelCredentials({ ...credentials, clusterId: credentials.identity.clusterId });
    const remotes = [joined.address, ...options.remoteAddresses.filter((address) => address !== joined.address)];
    const { value: answer } = await firstAnswering(remotes, (address) =>
      requestRaftJoin({ address, credentials: clientCredentials, clock: runtime.clock, advertiseAddress: options.advertiseAddress, signal }),
    );
    const authority = authorityFromAnswer(answer, credentials, runtime);
    await saveCertificateAuthority(paths.ca, authority, signalOption);
    await saveTlsMaterial(paths.certificates, credentials, signalOption);
    const state: ManagerState = {
      clusterId: credentials.identity.clusterId,
      nodeId: credentials.identity.nodeId,
      role: "manager",
      raftId: answer.raftId,
      advertiseAddress: options.advertiseAddress,
      managers: answer.members,
    };
    await saveManagerState(paths, state, signalOption);
    manager = await ManagerImpl.start({ paths, state, authority, material: credentials, bootstrap: false, certificateAddresses: [host] }, runtime);
    return manager;
  } catch (error) {
    await manager?.close();
    return discardPartialSwarm(paths, runtime.logger, error);
  }
}

/**
 * A daemon restart: everything from `<dataDir>/swarm/` (state.json, certificates, CA, raft
 * log and snapshots). FailedPreconditionError when this node is not a manager of a swarm
 * or part of its state is missing.
 */
export async function restartManager(options: ManagerOptions): Promise<Manager> {
  const runtime = runtimeOf(options);
  const paths = swarmPaths(options.dataDir);
  const signalOption = options.signal === undefined ? {} : { signal: options.signal };
  const state = await loadManagerState(paths, signalOption);
  if (state === undefined) throw new FailedPreconditionError(`${paths.stateFile} does not exist: this node is not a swarm manager`);
  const material = await loadTlsMaterial(paths.certificates, signalOption);
  if (material === undefined) throw new FailedPreconditionError(`${paths.certificates} holds no certificate: leave the swarm and join it again`);
  const authority = await loadCertificateAuthority(paths.ca, { clock: runtime.clock, randomBytes: runtime.randomBytes, ...signalOption });
  if (authority === undefined) throw new FailedPreconditionError(`${paths.ca} holds no CA: leave the swarm and join it again`);
  const host = hostOfAddress(state.advertiseAddress);
  return ManagerImpl.start({ paths, state, authority, material, bootstrap: false, certificateAddresses: [host] }, runtime);
}

/** Whether `<dataDir>/swarm/state.json` says this node is a swarm manager (the daemon decides restartManager on it). */
export async function hasManagerState(dataDir: string, options: { signal?: AbortSignal } = {}): Promise<boolean> {
  return (await loadManagerState(swarmPaths(dataDir), options)) !== undefined;
}
