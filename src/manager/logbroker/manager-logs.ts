import { systemClock, type Clock } from "../../common/clock.js";
import type { Logger } from "../../common/logger.js";
import type { LogSelector, ServiceLogMessage, ServiceLogOptions, ServiceLogSource } from "../../api/docker-swarm/index.js";
import type { GrpcService } from "../../rpc/server.js";
import { createPeerAuthenticator, nodeTrustFromPem } from "../../rpc/tls/index.js";
import type { Manager } from "../manager/index.js";
import { LogBroker, resolveLogTasks } from "./broker.js";
import { createLeaderLogSource } from "./remote.js";
import { createLogBrokerService } from "./service.js";

/** The parts of a manager the log broker uses. */
export type LogsManager = Pick<Manager, "store" | "clusterId" | "isLeader" | "leaderAddress" | "channelCredentials" | "tlsMaterial">;

/**
 * One manager's logs: the broker (used while it leads), its gRPC service, and a
 * ServiceLogSource that serves a request from the local broker on the leader and relays
 * it from the leader's broker (SubscribeLogs) on a follower.
 */
export interface ManagerLogs extends ServiceLogSource {
  /** The LogBroker service, to serve next to the manager's own services. */
  grpcService(): GrpcService;
  /** Ends every subscription and listener of the local broker. */
  close(): void;
}

export function createManagerLogs(options: { manager: LogsManager; logger: Logger; clock?: Clock }): ManagerLogs {
  const { manager, logger } = options;
  const clock = options.clock ?? systemClock;
  const broker = new LogBroker({ resolveTasks: (selector) => manager.store.view((tx) => resolveLogTasks(tx, selector)), logger, clock });
  const remote = createLeaderLogSource({ leaderAddress: () => manager.leaderAddress(), credentials: () => manager.channelCredentials() });
  const service = createLogBrokerService({
    broker,
    logger,
    isLeader: () => manager.isLeader(),
    leaderAddress: () => manager.leaderAddress(),
    // Built per call from the current material: the CA bundle changes during a rotation.
    authenticate: (call) => createPeerAuthenticator(nodeTrustFromPem({ caPem: manager.tlsMaterial().caPem, clock, clusterId: manager.clusterId })).authenticate(call),
  });
  return {
    logs(selector: LogSelector, logOptions: ServiceLogOptions): AsyncIterable<ServiceLogMessage> {
      return manager.isLeader() ? broker.logs(selector, logOptions) : remote.logs(selector, logOptions);
    },
    grpcService: () => service,
    close: () => broker.close(),
  };
}
