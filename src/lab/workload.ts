// Workloads for driving a lab from tests and benchmarks: services and tasks over the REST
// API (not the CLI, so a CLI change cannot mask a cluster fault), and the managers' own
// record of raft elections.
import { readFile } from "node:fs/promises";

import { asArray, asRecord, numberField, recordField, stringField } from "../cli/parse.js";
import type { ApiClient } from "../cli/client.js";
import type { Lab } from "./lab.js";

export interface ServiceOptions {
  readonly replicas: number;
  /** The restart policy's delay; the cluster default (5 s, as in swarm) when absent. */
  readonly restartDelayMs?: number;
  /** Placement constraints, e.g. "node.role==worker". */
  readonly constraints?: readonly string[];
}

/** Creates a replicated busybox service that sleeps; resolves with its id once acknowledged. */
export async function createSleepService(client: ApiClient, name: string, options: ServiceOptions, signal?: AbortSignal): Promise<string> {
  const body = {
    Name: name,
    TaskTemplate: {
      ContainerSpec: { Image: "shoal-demo/busybox", Args: ["sleep", "86400"] },
      ...(options.constraints === undefined ? {} : { Placement: { Constraints: [...options.constraints] } }),
      // Docker's API counts durations in nanoseconds.
      ...(options.restartDelayMs === undefined ? {} : { RestartPolicy: { Condition: "any", Delay: options.restartDelayMs * 1_000_000 } }),
    },
    Mode: { Replicated: { Replicas: options.replicas } },
  };
  const created = asRecord(await client.json("POST", "/services/create", { body, ...(signal === undefined ? {} : { signal }) }), "create answer");
  return stringField(created, "ID");
}

export interface ServiceView {
  readonly id: string;
  readonly version: number;
  readonly spec: Record<string, unknown>;
  readonly labels: Record<string, string>;
}

export async function inspectService(client: ApiClient, name: string, signal?: AbortSignal): Promise<ServiceView> {
  const service = asRecord(await client.json("GET", `/services/${encodeURIComponent(name)}`, signal === undefined ? {} : { signal }), "service");
  const spec = recordField(service, "Spec");
  const labels: Record<string, string> = {};
  for (const [key, value] of Object.entries(recordField(spec, "Labels"))) if (typeof value === "string") labels[key] = value;
  return { id: stringField(service, "ID"), version: numberField(recordField(service, "Version"), "Index"), spec: { ...spec }, labels };
}

/** Adds one label to the service's spec (read, then update at that version): one acknowledged write. */
export async function addServiceLabel(client: ApiClient, name: string, key: string, signal?: AbortSignal): Promise<void> {
  const service = await inspectService(client, name, signal);
  await client.json("POST", `/services/${service.id}/update`, {
    query: { version: service.version },
    body: { ...service.spec, Labels: { ...service.labels, [key]: "1" } },
    ...(signal === undefined ? {} : { signal }),
  });
}

export interface TaskView {
  readonly id: string;
  readonly nodeId: string;
  readonly slot: number;
  readonly state: string;
  readonly desiredState: string;
  readonly containerId: string;
}

export async function listServiceTasks(client: ApiClient, service: string, signal?: AbortSignal): Promise<TaskView[]> {
  const filters = JSON.stringify({ service: [service] });
  const tasks = asArray(await client.json("GET", "/tasks", { query: { filters }, ...(signal === undefined ? {} : { signal }) }), "tasks");
  return tasks.map((item) => {
    const task = asRecord(item, "task");
    const status = recordField(task, "Status");
    return {
      id: stringField(task, "ID"),
      nodeId: stringField(task, "NodeID"),
      slot: numberField(task, "Slot"),
      state: stringField(status, "State"),
      desiredState: stringField(task, "DesiredState"),
      containerId: stringField(recordField(status, "ContainerStatus"), "ContainerID"),
    };
  });
}

export function runningTasks(tasks: readonly TaskView[]): TaskView[] {
  return tasks.filter((task) => task.state === "running" && task.desiredState === "running");
}

/** Node id by lab host name, as the managers see it. */
export async function nodeIdsByHost(lab: Lab): Promise<Map<string, string>> {
  return new Map((await lab.nodes()).map((node) => [node.hostname, node.id]));
}

/** Ids of the running containers of one service on one host, from that host's own engine. */
export async function hostServiceContainers(lab: Lab, host: string, serviceId: string): Promise<string[]> {
  const filters = JSON.stringify({ label: [`com.docker.swarm.service.id=${serviceId}`], status: ["running"] });
  const list = asArray(await lab.client(host).json("GET", "/containers/json", { query: { filters } }), "containers");
  return list.map((item) => stringField(asRecord(item, "container"), "Id"));
}

export interface LeaderChange {
  readonly host: string;
  readonly term: number;
  readonly raftId: string;
  /** When the manager logged it (ms since the epoch, the machine's clock). */
  readonly at: number;
}

/** Every "became leader" the managers logged (raft-node "raft leadership changed", role leader). */
export async function leaderElections(lab: Lab): Promise<LeaderChange[]> {
  const changes: LeaderChange[] = [];
  for (const host of lab.hosts.filter((item) => item.role === "manager")) {
    const text = await readFile(host.logFile, "utf8").catch(() => "");
    for (const line of text.split("\n")) {
      if (!line.includes("raft leadership changed")) continue;
      const parsed: unknown = JSON.parse(line);
      const record = asRecord(parsed, "log line");
      if (record["role"] === "leader" && typeof record["term"] === "number") {
        changes.push({ host: host.name, term: record["term"], raftId: String(record["node"]), at: typeof record["time"] === "number" ? record["time"] : 0 });
      }
    }
  }
  return changes;
}

/** Terms in which more than one manager became leader (must be empty: Raft's election safety). */
export function termsWithTwoLeaders(changes: readonly LeaderChange[]): string[] {
  const byTerm = new Map<number, Set<string>>();
  for (const change of changes) byTerm.set(change.term, new Set([...(byTerm.get(change.term) ?? []), change.host]));
  return [...byTerm.entries()].filter(([, hosts]) => hosts.size > 1).map(([term, hosts]) => `term ${term}: ${[...hosts].join(", ")}`);
}
