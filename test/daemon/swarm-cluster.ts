// REST views of a swarm node shared by the end-to-end swarm tests (test/daemon, test/fault).
import type { ApiClient } from "../../src/cli/client.js";
import { asArray, asRecord, recordField, stringField } from "../../src/cli/parse.js";
import { waitFor } from "../helpers/wait.js";

/** Anything with a node's REST client: a TestDaemon, or a lab host as `{ client: () => lab.client(name) }`. */
export interface ApiTarget {
  client(): ApiClient;
}

export interface NodeRow {
  readonly id: string;
  readonly role: string;
  readonly state: string;
  readonly availability: string;
  /** ManagerStatus.Reachability, "" for a node that is not a raft member. */
  readonly reachability: string;
  readonly leader: boolean;
}

export async function nodeRows(daemon: ApiTarget): Promise<NodeRow[]> {
  return asArray(await daemon.client().json("GET", "/nodes"), "nodes").map((item) => {
    const node = asRecord(item, "node");
    const spec = recordField(node, "Spec");
    const manager = node["ManagerStatus"] === undefined ? undefined : asRecord(node["ManagerStatus"], "ManagerStatus");
    return {
      id: stringField(node, "ID"),
      role: stringField(spec, "Role"),
      state: stringField(recordField(node, "Status"), "State"),
      availability: stringField(spec, "Availability"),
      reachability: manager === undefined ? "" : stringField(manager, "Reachability"),
      leader: manager?.["Leader"] === true,
    };
  });
}

export interface RunningTask {
  readonly id: string;
  readonly nodeId: string;
  readonly containerId: string;
}

/** The service's tasks that run (desired and observed), with their containers. */
export async function runningTasks(daemon: ApiTarget, service: string): Promise<RunningTask[]> {
  const filters = JSON.stringify({ service: [service], "desired-state": ["running"] });
  const tasks = asArray(await daemon.client().json("GET", "/tasks", { query: { filters } }), "tasks").map((item) => asRecord(item, "task"));
  return tasks
    .filter((task) => stringField(recordField(task, "Status"), "State") === "running")
    .map((task) => ({
      id: stringField(task, "ID"),
      nodeId: stringField(task, "NodeID"),
      containerId: stringField(recordField(recordField(task, "Status"), "ContainerStatus"), "ContainerID"),
    }));
}

/** Waits until exactly `replicas` tasks of `service` run; returns them. */
export async function waitForRunning(daemon: ApiTarget, service: string, replicas: number, timeoutMs = 60_000): Promise<RunningTask[]> {
  let last = "";
  return waitFor(`${replicas} running ${service} tasks`, async () => {
    const running = await runningTasks(daemon, service);
    last = JSON.stringify(running.map((task) => task.nodeId));
    return running.length === replicas ? running : undefined;
  }, { timeoutMs, intervalMs: 250 }).catch((error: unknown) => {
    throw new Error(`running on ${last}`, { cause: error });
  });
}

/** Ids of the containers a daemon's engine runs. */
export async function runningContainers(daemon: ApiTarget): Promise<Set<string>> {
  const list = asArray(await daemon.client().json("GET", "/containers/json"), "containers");
  return new Set(list.map((item) => stringField(asRecord(item, "container"), "Id")));
}

export async function nodeIdOf(daemon: ApiTarget): Promise<string> {
  const swarm = asRecord(asRecord(await daemon.client().json("GET", "/info"), "info")["Swarm"], "Swarm");
  return stringField(swarm, "NodeID");
}

