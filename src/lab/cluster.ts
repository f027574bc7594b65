import { Readable } from "node:stream";

import { ApiClient } from "../cli/client.js";
import { asArray, asRecord, recordField, stringField, booleanField } from "../cli/parse.js";
import type { Clock } from "../common/clock.js";
import { DeadlineExceededError, FailedPreconditionError, errorMessage, throwIfAborted } from "../common/errors.js";
import { buildDemoArchive } from "../engine/images/index.js";
import { labGrpcPort } from "./names.js";
import type { LabHostState } from "./state.js";

/** Joining and readiness are bounded: a host that never becomes ready fails `up` with the reason. */
export const labReadyTimeoutMs = 60_000;
/** One REST call to a lab host; a paused or partitioned host must not hang the caller. */
export const labRequestTimeoutMs = 5_000;
const readyPollMs = 100;

/** What one manager says about one node (the REST /nodes answer, parsed). */
export interface LabNodeView {
  readonly id: string;
  readonly hostname: string;
  readonly role: string;
  readonly state: string;
  readonly leader: boolean;
  readonly reachability: string;
}

export function hostClient(host: LabHostState): ApiClient {
  return new ApiClient({ kind: "unix", path: host.socket });
}

function timeoutSignal(signal: AbortSignal | undefined, timeoutMs = labRequestTimeoutMs): AbortSignal {
  const timeout = AbortSignal.timeout(timeoutMs);
  return signal === undefined ? timeout : AbortSignal.any([signal, timeout]);
}

export async function listNodes(host: LabHostState, options: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<LabNodeView[]> {
  const answer = await hostClient(host).json("GET", "/nodes", { signal: timeoutSignal(options.signal, options.timeoutMs) });
  return asArray(answer, "node list").map((item) => {
    const node = asRecord(item, "node");
    const manager = recordField(node, "ManagerStatus");
    return {
      id: stringField(node, "ID"),
      hostname: stringField(recordField(node, "Description"), "Hostname"),
      role: stringField(recordField(node, "Spec"), "Role"),
      state: stringField(recordField(node, "Status"), "State"),
      leader: booleanField(manager, "Leader"),
      reachability: stringField(manager, "Reachability"),
    };
  });
}

/** Loads shoal-demo/busybox into a host's engine; the load answer is a JSON stream whose errors are fields. */
export async function loadDemoImage(host: LabHostState, archive: Buffer, signal?: AbortSignal): Promise<void> {
  const response = await hostClient(host).stream("POST", "/images/load", {
    upload: { stream: Readable.from([archive]), contentType: "application/x-tar" },
    ...(signal === undefined ? {} : { signal }),
  });
  let text = "";
  for await (const chunk of response.body) text += String(chunk);
  if (response.status >= 400 || /"error"/.test(text)) throw new FailedPreconditionError(`loading the demo image on ${host.name} failed: ${text.slice(0, 500)}`);
}

export async function buildLabDemoArchive(): Promise<Buffer> {
  return await buildDemoArchive();
}

async function waitUntil<T>(what: string, probe: () => Promise<T | undefined>, options: { clock: Clock; signal?: AbortSignal; timeoutMs?: number }): Promise<T> {
  const timeoutMs = options.timeoutMs ?? labReadyTimeoutMs;
  const deadline = options.clock.now() + timeoutMs;
  let last = "";
  for (;;) {
    throwIfAborted(options.signal);
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      last = errorMessage(error);
    }
    if (options.clock.now() > deadline) throw new DeadlineExceededError(`${what} did not happen within ${timeoutMs} ms${last === "" ? "" : ` (last error: ${last})`}`);
    await options.clock.sleep(readyPollMs, options.signal === undefined ? {} : { signal: options.signal });
  }
}


function joinBody(host: LabHostState, remote: LabHostState, token: string): Record<string, unknown> {
  const address = `${host.address}:${labGrpcPort}`;
  return { ListenAddr: address, AdvertiseAddr: address, RemoteAddrs: [`${remote.address}:${labGrpcPort}`], JoinToken: token, Availability: "active" };
}

/**
 * Forms the swarm: init on the first manager, then the other managers one at a time (each
 * waits until it is a reachable voter, so quorum never depends on a half-joined member),
 * then the workers, then waits until every node is ready.
 */
export async function formLabSwarm(hosts: readonly LabHostState[], options: { clock: Clock; signal?: AbortSignal }): Promise<void> {
  const [first, ...rest] = hosts;
  if (first === undefined || first.role !== "manager") throw new FailedPreconditionError("a lab needs a manager first");
  const client = hostClient(first);
  const address = `${first.address}:${labGrpcPort}`;
  const signal = options.signal === undefined ? {} : { signal: options.signal };
  await client.json("POST", "/swarm/init", { body: { ListenAddr: address, AdvertiseAddr: address, ForceNewCluster: false, Availability: "active", Spec: {} }, ...signal });
  const tokens = recordField(asRecord(await client.json("GET", "/swarm", signal), "swarm"), "JoinTokens");
  for (const host of rest.filter((candidate) => candidate.role === "manager")) {
    await hostClient(host).json("POST", "/swarm/join", { body: joinBody(host, first, stringField(tokens, "Manager")), ...signal });
    // A manager reports reachability first-hand only for itself and the leader it follows, so
    // the joined manager is asked: it lists itself and hears from a leader once raft took it in.
    await waitUntil(`${host.name} to become a manager that follows the leader`, async () => {
      const nodes = await listNodes(host, signal);
      const self = nodes.find((view) => view.hostname === host.name);
      const leader = nodes.find((view) => view.leader);
      return self?.role === "manager" && leader?.reachability === "reachable" ? true : undefined;
    }, options);
  }
  await Promise.all(
    rest.filter((candidate) => candidate.role === "worker").map(async (host) => {
      await hostClient(host).json("POST", "/swarm/join", { body: joinBody(host, first, stringField(tokens, "Worker")), ...signal });
    }),
  );
  await waitAllReady(first, hosts, options);
}

/** Waits until `observer` lists every host as a ready node. */
export async function waitAllReady(observer: LabHostState, hosts: readonly LabHostState[], options: { clock: Clock; signal?: AbortSignal; timeoutMs?: number }): Promise<void> {
  let seen = "";
  await waitUntil("every lab node to be ready", async () => {
    const nodes = await listNodes(observer, options.signal === undefined ? {} : { signal: options.signal });
    seen = nodes.map((node) => `${node.hostname}=${node.state}`).join(" ");
    return hosts.every((host) => nodes.some((node) => node.hostname === host.name && node.state === "ready")) ? true : undefined;
  }, options).catch((error: unknown) => {
    throw new DeadlineExceededError(`${errorMessage(error)}; nodes seen: ${seen}`, { cause: error });
  });
}
