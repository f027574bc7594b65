import { pino } from "pino";

import type { ServiceLogSource } from "../../../src/api/docker-swarm/index.js";
import { nodeRoutes } from "../../../src/api/routes/nodes.js";
import { serviceRoutes } from "../../../src/api/routes/services.js";
import { swarmRoutes } from "../../../src/api/routes/swarm.js";
import { taskRoutes } from "../../../src/api/routes/tasks.js";
import { createApiServer, type ApiServer } from "../../../src/api/server.js";
import { FailedPreconditionError, UnavailableError } from "../../../src/common/errors.js";
import { createControlApi, notManagerMessages } from "../../../src/manager/controlapi/index.js";
import type { ClusterControl, ControlApi, SwarmMembership } from "../../../src/manager/controlapi/index.js";
import type { JoinTokens } from "../../../src/manager/objects/index.js";
import { MemoryStore } from "../../../src/manager/store/index.js";

/**
 * A ClusterControl for route tests: a real control API over a real MemoryStore (no raft),
 * with init creating the cluster and this node in the store. Join is not modelled here:
 * it needs the CA and raft, which the daemon's composition wires.
 */
export class LocalClusterControl implements ClusterControl {
  readonly store = new MemoryStore({ proposer: null, logger: pino({ level: "silent" }) });
  readonly api: ControlApi;
  state: SwarmMembership = "none";
  readonly nodeId = "node0000000000000000000001";
  #tokenCounter = 0;

  constructor() {
    let next = 0;
    this.api = createControlApi({ store: this.store, logger: pino({ level: "silent" }), newId: () => `obj${String((next += 1)).padStart(22, "0")}` });
  }

  membership(): SwarmMembership {
    return this.state;
  }

  isManager(): boolean {
    return this.state === "manager";
  }

  controlApi(): ControlApi {
    if (this.state !== "manager") throw new UnavailableError(notManagerMessages[this.state]);
    return this.api;
  }

  leaderAddress(): string | undefined {
    return undefined;
  }

  async swarmInit(): Promise<string> {
    if (this.state !== "none") throw new FailedPreconditionError("This node is already part of a swarm.");
    await this.api.initCluster({
      clusterId: "cluster00000000000000000001",
      spec: { name: "default" },
      joinTokens: this.#tokens(),
      node: {
        id: this.nodeId,
        spec: { name: "", labels: {}, role: "manager", availability: "active" },
        description: { hostname: "host0", platform: { os: "linux", architecture: "amd64" }, resources: { nanoCPUs: 2e9, memoryBytes: 2 ** 32 }, engine: { engineVersion: "0.1.0", labels: {} } },
        status: { state: "ready", addr: "127.0.0.1", message: "" },
      },
    });
    this.state = "manager";
    return this.nodeId;
  }

  swarmJoin(): Promise<void> {
    return Promise.reject(new FailedPreconditionError("joining is not modelled by the route-test harness"));
  }

  swarmLeave(force: boolean): Promise<void> {
    if (this.state === "manager" && !force) return Promise.reject(new FailedPreconditionError("You are attempting to leave the swarm on a node that is participating as a manager. Use --force."));
    this.state = "none";
    return Promise.resolve();
  }

  joinTokens(): JoinTokens {
    return this.api.getCluster().joinTokens;
  }

  async rotateJoinToken(role: "worker" | "manager"): Promise<JoinTokens> {
    const fresh = this.#tokens();
    const tokens = { ...this.joinTokens(), [role]: fresh[role] };
    await this.api.setJoinTokens(tokens);
    return tokens;
  }

  managerStatus(nodeId: string): { leader: boolean; reachability: "reachable"; addr: string } | undefined {
    return nodeId === this.nodeId ? { leader: true, reachability: "reachable", addr: "127.0.0.1:2377" } : undefined;
  }

  #tokens(): JoinTokens {
    this.#tokenCounter += 1;
    return { worker: `SWMTKN-1-test-worker-${this.#tokenCounter}`, manager: `SWMTKN-1-test-manager-${this.#tokenCounter}` };
  }
}

export async function createSwarmApi(control: ClusterControl, logs?: ServiceLogSource): Promise<ApiServer> {
  const options = logs === undefined ? { control } : { control, logs };
  return createApiServer({
    logger: pino({ level: "silent" }),
    registrars: [swarmRoutes(options), serviceRoutes(options), nodeRoutes(options), taskRoutes(options)],
  });
}
