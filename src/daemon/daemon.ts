import { mkdir } from "node:fs/promises";
import { dirname } from "node:path";

import { ExecRegistry } from "../api/exec-registry.js";
import { containerRoutes, containerUpgradeRoutes } from "../api/routes/containers.js";
import { imageRoutes } from "../api/routes/images.js";
import { systemRoutes } from "../api/routes/system.js";
import { createApiServer, type ApiServer } from "../api/server.js";
import type { SystemInfo, SystemInfoSource } from "../api/system-info.js";
import type { Logger } from "../common/logger.js";
import { createEngine, type Engine } from "../engine/index.js";
import { shoalVersion } from "../common/version.js";
import { createHealthHandlers, loadHealthProto, startGrpcServer, type GrpcServer } from "../rpc/index.js";
import type { DaemonConfig } from "./config.js";
import { readHostFacts, type HostFacts } from "./host.js";
import { acquireDataDirLock, type DataDirLock } from "./lock.js";
import { loadOrCreateNodeId } from "./node-id.js";

export interface Daemon {
  readonly nodeId: string;
  /** The bound cluster gRPC address. */
  readonly grpcAddress: string;
  /** The bound REST addresses: the socket path, then "host:port" when --api-listen is set. */
  readonly apiAddresses: readonly string[];
  /** Stops serving and releases the data dir. Idempotent. */
  close(): Promise<void>;
}

function systemInfoSource(options: { config: DaemonConfig; nodeId: string; host: HostFacts; engine: Engine }): SystemInfoSource {
  const { config, nodeId, host, engine } = options;
  return {
    info(): Promise<SystemInfo> {
      const engineInfo = engine.info();
      const apiWarning = config.apiListen === null ? [] : [`the REST API on ${config.apiListen.host}:${config.apiListen.port} is unauthenticated plain HTTP`];
      return Promise.resolve({
        nodeId,
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
        swarm: { state: "inactive", nodeAddr: "", controlAvailable: false, error: "" },
        warnings: [...engineInfo.warnings, ...apiWarning],
        labels: [],
      });
    },
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
    const nodeId = await loadOrCreateNodeId(config.dataDir);
    const host = readHostFacts();

    const healthProto = loadHealthProto();
    const grpc: GrpcServer = await startGrpcServer({
      host: config.listenAddr.host,
      port: config.listenAddr.port,
      services: [
        {
          definition: healthProto.shoal.v1.Health.service,
          handlers: createHealthHandlers({
            nodeId,
            version: shoalVersion,
            status: (component) => (component === "" ? "serving" : undefined),
          }),
        },
      ],
    });
    closers.push(() => grpc.close());

    const engine = await createEngine({ dataDir: config.dataDir, runDir: config.runDir, logger });
    closers.push(() => engine.close());

    const execs = new ExecRegistry(engine.containers);
    const apiLogger = logger.child({ component: "api" });
    const api: ApiServer = await createApiServer({
      logger: apiLogger,
      registrars: [
        systemRoutes(systemInfoSource({ config, nodeId, host, engine })),
        imageRoutes(engine.images),
        containerRoutes({ containers: engine.containers, execs, logger: apiLogger }),
      ],
      upgrades: containerUpgradeRoutes({ execs }),
    });
    closers.push(() => api.close());
    const apiAddresses = [await api.listen({ kind: "unix", path: config.socketPath })];
    if (config.apiListen !== null) {
      apiAddresses.push(await api.listen({ kind: "tcp", ...config.apiListen }));
      log.warn({ address: apiAddresses[1] }, "REST API listening on TCP without TLS: anyone who reaches it controls this node");
    }
    log.info({ nodeId, grpc: grpc.address, api: apiAddresses, dataDir: config.dataDir, version: shoalVersion }, "shoald started");
    let closing: Promise<void> | undefined;
    return {
      nodeId,
      grpcAddress: grpc.address,
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
