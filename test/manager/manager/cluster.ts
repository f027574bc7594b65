import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { pino } from "pino";

import type { Logger } from "../../../src/common/logger.js";
import { initManager, joinManager, restartManager, type Manager } from "../../../src/manager/manager/index.js";
import { startGrpcServer, type GrpcServer } from "../../../src/rpc/index.js";

/** Fast raft timing so elections settle in about a second. */
export const raftTickMs = 50;
export const raftElectionTicks = 10;
/** Frequent snapshots with little log kept behind them, so that catching up goes through snapshots. */
const raftSnapshotEveryEntries = 20;
const raftSnapshotCatchUpEntries = 5;
const raftOptions = { raftTickMs, raftElectionTicks, raftSnapshotEveryEntries, raftSnapshotCatchUpEntries };

export const logger: Logger = pino({ level: process.env["SHOAL_TEST_LOG"] ?? "silent" });

/** A port nobody listens on right now (the OS picks it), for a server that must know its address first. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === "string") throw new Error("no TCP address");
  return address.port;
}

/** One manager node as a daemon would run it: the Manager and one mTLS gRPC server for its services. */
export class TestNode {
  readonly name: string;
  readonly dataDir: string;
  readonly port: number;
  manager: Manager | null = null;
  server: GrpcServer | null = null;

  constructor(name: string, dataDir: string, port: number) {
    this.name = name;
    this.dataDir = dataDir;
    this.port = port;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  get running(): Manager {
    if (this.manager === null) throw new Error(`${this.name} is not running`);
    return this.manager;
  }

  async #serve(manager: Manager): Promise<Manager> {
    this.manager = manager;
    this.server = await startGrpcServer({ host: "127.0.0.1", port: this.port, services: manager.grpcServices(), credentials: manager.serverCredentials() });
    return manager;
  }

  async init(): Promise<Manager> {
    return this.#serve(await initManager({ dataDir: this.dataDir, logger, advertiseAddress: this.address, ...raftOptions }));
  }

  async join(remote: string, token: string): Promise<Manager> {
    const manager = await joinManager({
      dataDir: this.dataDir,
      logger,
      advertiseAddress: this.address,
      remoteAddresses: [remote],
      joinToken: token,
      ...raftOptions,
    });
    return this.#serve(manager);
  }

  async restart(): Promise<Manager> {
    return this.#serve(await restartManager({ dataDir: this.dataDir, logger, ...raftOptions }));
  }

  /** Stops the manager and its server, as a daemon shutting down would (data stays). */
  async stop(): Promise<void> {
    const manager = this.manager;
    const server = this.server;
    this.manager = null;
    this.server = null;
    await manager?.close();
    await server?.close();
  }
}

/** Temp dirs and free ports for `count` nodes; `cleanup` stops them all and deletes the dirs. */
export async function createNodes(names: readonly string[]): Promise<{ nodes: TestNode[]; cleanup: () => Promise<void> }> {
  const root = await mkdtemp(join(tmpdir(), "shoal-manager-"));
  const nodes: TestNode[] = [];
  for (const name of names) nodes.push(new TestNode(name, join(root, name), await freePort()));
  return {
    nodes,
    cleanup: async () => {
      await Promise.allSettled(nodes.map((node) => node.stop()));
      await rm(root, { recursive: true, force: true });
    },
  };
}
