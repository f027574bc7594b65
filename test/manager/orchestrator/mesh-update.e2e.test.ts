import assert from "node:assert/strict";
import { request } from "node:http";
import { after, before, describe, test } from "node:test";

import { asArray, asRecord, recordField, stringField, type JsonRecord } from "../../../src/cli/parse.js";
import { createLogger } from "../../../src/common/logger.js";
import { Lab } from "../../../src/lab/index.js";
import { waitFor } from "../../helpers/wait.js";
import { dataPlaneSkipReason } from "../../worker/network/netns.js";

/**
 * Zero-downtime rolling updates through the routing mesh (issue 8): a health-checked web
 * service published on the ingress network, rolled one task at a time in both orders while
 * a client opens a new connection for every request to the published port. Every request
 * must succeed. One lab host (its own network namespace, so the mesh's nftables table
 * cannot clash with the machine's or another test's).
 */

const logger = createLogger({ level: "warn", pretty: false });
const skip = dataPlaneSkipReason() ?? false;
const labName = "meshupd";
const publishedPort = 8080;
const replicas = 3;
/** Short enough that a task taken out of rotation too late shows up as a failure rather than a slow answer. */
const requestTimeoutMs = 1_000;
/** Requests in flight at once: each loop opens a new connection per request. */
const clientLoops = 2;
const rolloutTimeoutMs = 90_000;
/**
 * httpd listens only a second after the container starts: a task that joined the mesh as
 * soon as it runs, before its health check passes, would refuse connections (checked: 202
 * of 2,115 requests refused in one start-first update without the health check).
 */
const webArgs = ["sh", "-c", "sleep 1 && mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www"];
/** Healthy only once httpd answers. */
const healthCmd = "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 1 127.0.0.1 80 | grep -q '200 OK'";

interface Failure {
  atMs: number;
  error: string;
}

/** One GET on a new connection; the replying container's hostname, or the error. */
function fetchOnce(host: string, port: number): Promise<{ body: string } | { error: string }> {
  return new Promise((resolve) => {
    const outgoing = request({ host, port, path: "/", agent: false, timeout: requestTimeoutMs }, (response) => {
      let body = "";
      response.setEncoding("utf8");
      response.on("data", (chunk: string) => (body += chunk));
      response.on("end", () => resolve(response.statusCode === 200 ? { body: body.trim() } : { error: `HTTP ${response.statusCode ?? 0}` }));
      response.on("error", (error) => resolve({ error: error.message }));
    });
    outgoing.on("timeout", () => outgoing.destroy(new Error(`no answer within ${requestTimeoutMs} ms`)));
    outgoing.on("error", (error) => resolve({ error: error.message }));
    outgoing.end();
  });
}

/** Sends requests back to back from `clientLoops` loops until stopped; counts what was sent, what failed and who answered. */
function startClient(host: string, port: number): { stop: () => Promise<{ sent: number; failures: Failure[]; answeredBy: Set<string>; slowestMs: number }> } {
  const started = Date.now();
  let running = true;
  let sent = 0;
  let slowestMs = 0;
  const failures: Failure[] = [];
  const answeredBy = new Set<string>();
  const loop = async (): Promise<void> => {
    while (running) {
      sent += 1;
      const sentAt = Date.now();
      const result = await fetchOnce(host, port);
      if ("error" in result) failures.push({ atMs: Date.now() - started, error: result.error });
      else {
        answeredBy.add(result.body);
        slowestMs = Math.max(slowestMs, Date.now() - sentAt);
      }
    }
  };
  const loops = Promise.all(Array.from({ length: clientLoops }, loop));
  return {
    stop: async () => {
      running = false;
      await loops;
      return { sent, failures, answeredBy, slowestMs };
    },
  };
}

async function shoalIn(lab: Lab, ...args: string[]): Promise<string> {
  const result = await lab.exec("m1", ["shoal", ...args], { timeoutMs: 60_000 });
  assert.equal(result.code, 0, `shoal ${args.join(" ")}: ${result.stderr}`);
  return result.stdout;
}

async function tasksOf(lab: Lab, name: string): Promise<JsonRecord[]> {
  const filters = JSON.stringify({ service: { [name]: true } });
  return asArray(await lab.client("m1").json("GET", "/tasks", { query: { filters } }), "tasks").map((task) => asRecord(task, "task"));
}

function envOf(task: JsonRecord): string[] {
  return asArray(recordField(recordField(task, "Spec"), "ContainerSpec")["Env"] ?? [], "Env").map(String);
}

/** Tasks meant to run that run and pass their health check. */
function healthy(tasks: readonly JsonRecord[]): JsonRecord[] {
  return tasks.filter((task) => {
    const status = recordField(task, "Status");
    return stringField(task, "DesiredState") === "running" && stringField(status, "State") === "running" && stringField(status, "Health") === "healthy";
  });
}

async function updateStatus(lab: Lab, name: string): Promise<{ state: string; message: string }> {
  const service = asRecord(await lab.client("m1").json("GET", `/services/${name}`), "service");
  const status = recordField(service, "UpdateStatus");
  return { state: stringField(status, "State"), message: stringField(status, "Message") };
}

/**
 * Rolls every task of `web` with `order` under client load; asserts no request failed, the
 * update completed and every task runs the new spec. Returns the figures for the log.
 */
async function rollUnderLoad(lab: Lab, order: "start-first" | "stop-first", value: string): Promise<string> {
  const client = startClient(lab.host("m1").address, publishedPort);
  let outcome: Awaited<ReturnType<ReturnType<typeof startClient>["stop"]>> | undefined;
  try {
    const updateStarted = Date.now();
    await shoalIn(lab, "service", "update", "--detach", "--update-order", order, "--update-parallelism", "1", "--update-monitor", "500ms", "--env-add", `X=${value}`, "web");
    const status = await waitFor(`the ${order} update of web to end`, async () => {
      const current = await updateStatus(lab, "web");
      return ["completed", "paused", "rollback_completed", "rollback_paused"].includes(current.state) ? current : undefined;
    }, { timeoutMs: rolloutTimeoutMs, intervalMs: 100 });
    const wallMs = Date.now() - updateStarted;
    assert.equal(status.state, "completed", status.message);
    outcome = await client.stop();
    const live = healthy(await tasksOf(lab, "web"));
    assert.equal(live.length, replicas);
    assert.ok(live.every((task) => envOf(task).includes(`X=${value}`)), "every task runs the new spec");
    assert.ok(outcome.sent > 50, `only ${outcome.sent} requests were sent during the update`);
    assert.deepEqual(outcome.failures, [], `${outcome.failures.length} of ${outcome.sent} requests failed during the ${order} update`);
    return `${order}: ${outcome.sent} requests, ${outcome.failures.length} failed, update completed in ${wallMs} ms, answered by ${outcome.answeredBy.size} containers, slowest answer ${outcome.slowestMs} ms`;
  } finally {
    if (outcome === undefined) await client.stop();
  }
}

describe("rolling updates through the routing mesh", { skip, timeout: 240_000 }, () => {
  let lab: Lab;

  before(async () => {
    lab = await Lab.up({ name: labName, managers: 1, workers: 0, logger });
    await shoalIn(
      lab, "service", "create", "--detach", "--name", "web", "--replicas", String(replicas), "--publish", `${publishedPort}:80`, "--stop-grace-period", "1s",
      // Checked every 100 ms while starting (failures then do not count), every 500 ms once healthy.
      "--health-cmd", healthCmd, "--health-interval", "500ms", "--health-timeout", "2s", "--health-retries", "3",
      "--health-start-period", "15s", "--health-start-interval", "100ms",
      "shoal-demo/busybox", ...webArgs,
    );
    await waitFor(`${replicas} healthy web tasks answering on the published port`, async () => {
      if (healthy(await tasksOf(lab, "web")).length !== replicas) return undefined;
      const seen = new Set<string>();
      for (let attempt = 0; attempt < 3 * replicas; attempt += 1) {
        const result = await fetchOnce(lab.host("m1").address, publishedPort);
        if ("error" in result) return undefined;
        seen.add(result.body);
      }
      return seen.size === replicas ? true : undefined;
    }, { timeoutMs: rolloutTimeoutMs, intervalMs: 250 });
  });

  after(async () => {
    await Lab.downByName(labName, { logger });
  });

  test("start-first, parallelism 1: no request through the published port fails while every task is replaced", async (t) => {
    t.diagnostic(await rollUnderLoad(lab, "start-first", "1"));
  });

  test("stop-first, parallelism 1 of 3 replicas: no request fails either, since the other replicas serve", async (t) => {
    t.diagnostic(await rollUnderLoad(lab, "stop-first", "2"));
  });
});
