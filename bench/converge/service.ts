// The benchmark's service operations, all through shoald's Docker-compatible REST API,
// polled the way peers/swarm-converge.sh polls dockerd.
import type { ApiClient } from "../../src/cli/client.js";
import { asArray, asRecord, numberField, recordField, stringField } from "../../src/cli/parse.js";
import { systemClock } from "../../src/common/clock.js";
import { UnavailableError } from "../../src/common/errors.js";

export const demoImage = "shoal-demo/busybox";
/** Exits at once on SIGTERM: `wait` is interruptible, so the trap fires without waiting for sleep. */
const taskCommand = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 3600 & wait; done"];
const stopGracePeriodNs = 1e9;
/** Polling period, as in the brief: the figure's resolution. */
export const pollMs = 25;
/** Longest wait for one convergence or removal (the peer script's TIMEOUT_S). */
const waitTimeoutMs = 300_000;

/** Docker's ServiceSpec for N replicas of the demo task. Swarm specs have no network mode: tasks get the default. */
function serviceSpec(name: string, replicas: number): Record<string, unknown> {
  return {
    Name: name,
    TaskTemplate: { ContainerSpec: { Image: demoImage, Command: taskCommand, StopGracePeriod: stopGracePeriodNs } },
    Mode: { Replicated: { Replicas: replicas } },
  };
}

/** Tasks of the service with desired state running whose observed state is running. */
export async function countRunningTasks(client: ApiClient, name: string, options: { signal: AbortSignal }): Promise<number> {
  const filters = JSON.stringify({ service: [name], "desired-state": ["running"] });
  const tasks = asArray(await client.json("GET", "/tasks", { query: { filters }, signal: options.signal }), "task list");
  return tasks.filter((item) => stringField(recordField(asRecord(item, "task"), "Status"), "State") === "running").length;
}

async function countServiceContainers(client: ApiClient, serviceId: string, options: { signal: AbortSignal }): Promise<number> {
  const filters = JSON.stringify({ label: [`com.docker.swarm.service.id=${serviceId}`] });
  return asArray(await client.json("GET", "/containers/json", { query: { all: 1, filters }, signal: options.signal }), "container list").length;
}

/** Polls `count` every pollMs until it returns `expected`; answers the ms since `startedAt`. */
async function waitForCount(what: string, startedAt: number, expected: number, count: () => Promise<number>, signal: AbortSignal): Promise<number> {
  const deadline = startedAt + waitTimeoutMs;
  let last = -1;
  for (;;) {
    last = await count();
    const now = performance.now();
    if (last === expected) return now - startedAt;
    if (now > deadline) throw new UnavailableError(`timed out after ${waitTimeoutMs} ms waiting for ${what}: ${last} of ${expected}`);
    await systemClock.sleep(pollMs, { signal });
  }
}

/** Creates the service; answers its id and when the request was sent (performance.now()). */
export async function createService(client: ApiClient, name: string, replicas: number, options: { signal: AbortSignal }): Promise<{ serviceId: string; startedAt: number }> {
  const startedAt = performance.now();
  const created = asRecord(await client.json("POST", "/services/create", { body: serviceSpec(name, replicas), signal: options.signal }), "service create answer");
  return { serviceId: stringField(created, "ID"), startedAt };
}

/** Answers the ms from `startedAt` until `replicas` tasks of the service run. */
export function waitForRunning(client: ApiClient, name: string, replicas: number, startedAt: number, options: { signal: AbortSignal }): Promise<number> {
  return waitForCount(`${replicas} running tasks of ${name}`, startedAt, replicas, () => countRunningTasks(client, name, options), options.signal);
}

/** Scales the service to `replicas` (update at its current version) and answers the ms until they run. */
export async function scaleAndConverge(client: ApiClient, name: string, serviceId: string, replicas: number, options: { signal: AbortSignal }): Promise<number> {
  const inspected = asRecord(await client.json("GET", `/services/${serviceId}`, { signal: options.signal }), "service");
  const version = numberField(recordField(inspected, "Version"), "Index");
  const startedAt = performance.now();
  await client.json("POST", `/services/${serviceId}/update`, { query: { version }, body: serviceSpec(name, replicas), signal: options.signal });
  return waitForRunning(client, name, replicas, startedAt, options);
}

/** Removes the service and waits until none of its containers is left, so runs do not overlap. */
export async function removeAndDrain(client: ApiClient, serviceId: string, options: { signal: AbortSignal }): Promise<number> {
  const startedAt = performance.now();
  await client.json("DELETE", `/services/${serviceId}`, { signal: options.signal });
  return waitForCount(`the containers of service ${serviceId} to be removed`, startedAt, 0, () => countServiceContainers(client, serviceId, options), options.signal);
}
