import { mkdir } from "node:fs/promises";
import { dirname } from "node:path";

import { ExecRegistry } from "../api/exec-registry.js";
import { containerRoutes, containerUpgradeRoutes } from "../api/routes/containers.js";
import { imageRoutes } from "../api/routes/images.js";
import { networkRoutes } from "../api/routes/networks.js";
import { nodeRoutes } from "../api/routes/nodes.js";
import { serviceRoutes } from "../api/routes/services.js";
import { swarmRoutes } from "../api/routes/swarm.js";
import { systemRoutes } from "../api/routes/system.js";
import { taskRoutes } from "../api/routes/tasks.js";
import { createApiServer, type ApiServer } from "../api/server.js";
import type { SystemInfo, SystemInfoSource } from "../api/system-info.js";
import { systemClock } from "../common/clock.js";
import { routeCommandsThrough } from "../common/command.js";
import type { Logger } from "../common/logger.js";
import { CommandSpawner } from "../common/spawner.js";
import { createEngine, type Engine } from "../engine/index.js";
import { shoalVersion } from "../common/version.js";
import type { DaemonConfig } from "./config.js";
import { injectExecutor, leaderForwarding } from "./forward.js";
import { GrpcEndpoint } from "./grpc-endpoint.js";
import { readHostFacts, type HostFacts } from "./host.js";
import { acquireDataDirLock, type DataDirLock } from "./lock.js";
import { loadOrCreateNodeId } from "./node-id.js";
import { SwarmNode } from "./swarm.js";

export interface Daemon {
  /** The daemon's own id outside a swarm; the CA-issued id once in one. */
  readonly nodeId: string;
  /** The bound cluster gRPC address. */
  readonly grpcAddress: string;
  /** The bound REST addresses: the socket path, then "host:port" when --api-listen is set. */
  readonly apiAddresses: readonly string[];
  /** Stops serving and releases the data dir. Idempotent. */
  close(): Promise<void>;
}

function systemInfoSource(options: { config: DaemonConfig; swarm: SwarmNode; host: HostFacts; engine: Engine }): SystemInfoSource {
  const { config, swarm, host, engine } = options;
  return {
    info(): Promise<SystemInfo> {
      const engineInfo = engine.info();
      const apiWarning = config.apiListen === null ? [] : [`the REST API on ${config.apiListen.host}:${config.apiListen.port} is unauthenticated plain HTTP`];
      return Promise.resolve({
        nodeId: swarm.nodeId(),
        hostname: host.hostname,
        serverVersion: shoalVersion,
        operatingSystem: host.operatingSystem,
        osVersion: host.osVersion,
        kernelVersion: host.kernelVersion,
        arch: host.arch,
        ncpu: host.ncpu,
        memTotalBytes: host.memTotalBytes,
        dataDir: config.dataDir,
        containers: { running: engineInfo.containers.running, paused: 0, stopped: engineInfo.containers.stopped },
        images: engine.images.list().length,
        storageDriver: engineInfo.storageDriver,
        runtime: engineInfo.runtime,
        cgroupDriver: engineInfo.cgroupDriver,
        cgroupVersion: host.cgroupVersion,
        swarm: swarm.info(),
        warnings: [...engineInfo.warnings, ...apiWarning],
        labels: [],
      });
    },
  };
}

/** The REST API with every route; cluster writes on a follower go to the leader first. */
function startApi(options: { config: DaemonConfig; logger: Logger; swarm: SwarmNode; host: HostFacts; engine: Engine }): Promise<ApiServer> {
  const { config, logger, swarm, host, engine } = options;
  const execs = new ExecRegistry(engine.containers);
  const apiLogger = logger.child({ component: "api" });
  const control = { control: swarm };
  return createApiServer({
    logger: apiLogger,
    registrars: [
      leaderForwarding(swarm),
      systemRoutes(systemInfoSource({ config, swarm, host, engine })),
      imageRoutes(engine.images),
      containerRoutes({ containers: engine.containers, execs, logger: apiLogger }),
      swarmRoutes(control),
      serviceRoutes({ ...control, logs: swarm }),
      nodeRoutes(control),
      taskRoutes({ ...control, logs: swarm }),
      networkRoutes(control),
    ],
    upgrades: containerUpgradeRoutes({ execs }),
  });
}

/** Helper programs are forked by a small spawner process, not by the daemon (see spawner.ts). */
function routeCommandsThroughSpawner(logger: Logger): () => Promise<void> {
  const spawner = new CommandSpawner({ logger });
  const stopRouting = routeCommandsThrough(spawner);
  return async () => {
    stopRouting();
    await spawner.close();
  };
}

/**
 * The composition root of `shoald`: takes the data dir, then starts each part in
 * dependency order. A failure part-way closes what had started, in reverse.
 */
export async function startDaemon(config: DaemonConfig, logger: Logger): Promise<Daemon> {
  const log = logger.child({ component: "daemon" });
  const closers: Array<() => Promise<void>> = [];
  const closeAll = async (): Promise<void> => {
    for (const close of closers.splice(0).reverse()) {
      try {
        await close();
      } catch (error) {
        log.error({ err: error }, "error while shutting down");
      }
    }
  };
  try {
    await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
    await mkdir(config.runDir, { recursive: true, mode: 0o700 });
    await mkdir(dirname(config.socketPath), { recursive: true, mode: 0o755 });
    const lock: DataDirLock = await acquireDataDirLock(config.dataDir);
    closers.push(() => lock.release());
    closers.push(routeCommandsThroughSpawner(logger));
    const nodeId = await loadOrCreateNodeId(config.dataDir);
    const host = readHostFacts();

    const engine = await createEngine({ dataDir: config.dataDir, runDir: config.runDir, logger });
    closers.push(() => engine.close());

    // The leader replays forwarded requests on its own API, which starts after the swarm.
    const api: { server: ApiServer | undefined } = { server: undefined };
    const grpc = new GrpcEndpoint(config.listenAddr);
    const swarm = new SwarmNode({
      dataDir: config.dataDir,
      clock: systemClock,
      logger,
      engine,
      grpc,
      localNodeId: nodeId,
      advertiseAddr: config.advertiseAddr,
      forward: injectExecutor(() => api.server?.app),
      raftSnapshotInterval: config.raftSnapshotInterval,
    });
    closers.push(() => swarm.close());
    await swarm.start();

    const apiServer = await startApi({ config, logger, swarm, host, engine });
    api.server = apiServer;
    closers.push(() => apiServer.close());
    const apiAddresses = [await apiServer.listen({ kind: "unix", path: config.socketPath })];
    if (config.apiListen !== null) {
      apiAddresses.push(await apiServer.listen({ kind: "tcp", ...config.apiListen }));
      log.warn({ address: apiAddresses[1] }, "REST API listening on TCP without TLS: anyone who reaches it controls this node");
    }
    log.info({ nodeId: swarm.nodeId(), grpc: grpc.address, api: apiAddresses, dataDir: config.dataDir, version: shoalVersion }, "shoald started");
    let closing: Promise<void> | undefined;
    return {
      get nodeId() {
        return swarm.nodeId();
      },
      get grpcAddress() {
        return grpc.address;
      },
      apiAddresses,
      close() {
        closing ??= closeAll().then(() => log.info("shoald stopped"));
        return closing;
      },
    };
  } catch (error) {
    await closeAll();
    throw error;
  }
}
