// Routing-mesh throughput and latency (issue 7): HTTP requests through a published port
// versus straight to the task's address, same lab, same run, same load generator.
// wrk (Debian package wrk) drives the load when installed; otherwise a Node generator does.
import { spawnSync } from "node:child_process";
import { parseArgs } from "node:util";

import { asArray, asRecord, recordField, stringField } from "../../src/cli/parse.js";
import { createLogger } from "../../src/common/logger.js";
import { Lab } from "../../src/lab/index.js";

const labName = "bmesh";
const publishedPort = 8080;
const connections = 16;
const readyTimeoutMs = 60_000;
/** Swarm's routing mesh has no recorded baseline in RESULTS.md; the figures stand alone. */

/**
 * The task's web server: the host's own Node, bind-mounted read-only into the busybox demo
 * image. busybox httpd forks a process per connection, which made the server, not the
 * path to it, the bottleneck; a keep-alive server in one process measures the path.
 */
const taskServer = 'const os = require("node:os"); require("node:http").createServer((_, response) => response.end(os.hostname() + "\\n")).listen(80);';
const hostNodeMounts = [
  { Type: "bind", Source: "/usr", Target: "/usr", ReadOnly: true },
  { Type: "bind", Source: "/lib", Target: "/lib", ReadOnly: true },
  { Type: "bind", Source: "/lib64", Target: "/lib64", ReadOnly: true },
];

interface Figures {
  requestsPerSecond: number;
  p99Ms: number;
  errors: number;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[middle] ?? 0) : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
}

function medianFigures(runs: readonly Figures[]): Figures {
  return {
    requestsPerSecond: median(runs.map((item) => item.requestsPerSecond)),
    p99Ms: median(runs.map((item) => item.p99Ms)),
    errors: runs.reduce((sum, item) => sum + item.errors, 0),
  };
}

function hasWrk(): boolean {
  return spawnSync("sh", ["-c", "command -v wrk"]).status === 0;
}

/** wrk's "Requests/sec:" and its 99% latency line (with --latency). */
function parseWrk(output: string): Figures {
  const rate = /Requests\/sec:\s+([\d.]+)/u.exec(output)?.[1];
  const p99 = /\s99%\s+([\d.]+)(us|ms|s)\b/u.exec(output);
  const errors = /Non-2xx or 3xx responses:\s+(\d+)/u.exec(output)?.[1] ?? "0";
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/u.exec(output);
  if (rate === undefined || p99?.[1] === undefined) throw new Error(`wrk output not understood:\n${output}`);
  const scale = p99[2] === "us" ? 0.001 : p99[2] === "s" ? 1_000 : 1;
  const socketErrorCount = socketErrors === null ? 0 : socketErrors.slice(1).reduce((sum, value) => sum + Number(value), 0);
  return { requestsPerSecond: Number(rate), p99Ms: Number(p99[1]) * scale, errors: Number(errors) + socketErrorCount };
}

/** A closed-loop HTTP/1.1 keep-alive generator: `connections` workers for `seconds`. */
const nodeGenerator = `
const http = require("node:http");
const [host, port, seconds, connections] = process.argv.slice(1).map((value, index) => (index === 0 ? value : Number(value)));
const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
const latencies = [];
let errors = 0;
const end = Date.now() + seconds * 1000;
const one = () => new Promise((resolve) => {
  const started = process.hrtime.bigint();
  const request = http.get({ host, port, path: "/", agent }, (response) => {
    response.resume();
    response.on("end", () => { latencies.push(Number(process.hrtime.bigint() - started) / 1e6); resolve(); });
  });
  request.on("error", () => { errors += 1; resolve(); });
});
const worker = async () => { while (Date.now() < end) await one(); };
Promise.all(Array.from({ length: connections }, worker)).then(() => {
  latencies.sort((a, b) => a - b);
  const p99 = latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * 0.99))] ?? 0;
  process.stdout.write(JSON.stringify({ requestsPerSecond: latencies.length / seconds, p99Ms: p99, errors }));
});
`;

/**
 * One load run over kept-alive connections. (A new connection per request measures
 * something else here: the server closes first, so its TIME_WAIT sockets meet the client's
 * reused ports and about 17 % of SYNs wait out a 1 s retransmit, on either path.)
 */
async function measure(lab: Lab, from: string, address: string, port: number, seconds: number, wrk: boolean): Promise<Figures> {
  if (wrk) {
    const result = await lab.exec(from, ["wrk", "-t2", `-c${connections}`, `-d${seconds}s`, "--latency", `http://${address}:${port}/`], { timeoutMs: (seconds + 30) * 1_000 });
    if (result.code !== 0) throw new Error(`wrk failed: ${result.stderr}`);
    return parseWrk(result.stdout);
  }
  const result = await lab.exec(from, [process.execPath, "-e", nodeGenerator, address, String(port), String(seconds), String(connections)], { timeoutMs: (seconds + 30) * 1_000 });
  if (result.code !== 0) throw new Error(`load generator failed: ${result.stderr}`);
  const parsed = asRecord(JSON.parse(result.stdout), "generator output");
  return { requestsPerSecond: Number(parsed["requestsPerSecond"]), p99Ms: Number(parsed["p99Ms"]), errors: Number(parsed["errors"]) };
}

async function waitForTask(lab: Lab): Promise<{ host: string; containerId: string }> {
  const deadline = Date.now() + readyTimeoutMs;
  for (;;) {
    const tasks = asArray(await lab.client("m1").json("GET", "/tasks", { query: { filters: JSON.stringify({ service: { web: true } }) } }), "tasks").map((item) => asRecord(item, "task"));
    const running = tasks.find((task) => stringField(recordField(task, "Status"), "State") === "running");
    if (running !== undefined) {
      const nodes = asArray(await lab.client("m1").json("GET", "/nodes"), "nodes").map((item) => asRecord(item, "node"));
      const node = nodes.find((item) => stringField(item, "ID") === stringField(running, "NodeID"));
      return { host: stringField(recordField(node ?? {}, "Description"), "Hostname"), containerId: stringField(recordField(recordField(running, "Status"), "ContainerStatus"), "ContainerID") };
    }
    if (Date.now() > deadline) throw new Error("the web task did not start");
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

async function run(quick: boolean, json: boolean): Promise<void> {
  const seconds = quick ? 3 : 10;
  const wrk = hasWrk();
  const logger = createLogger({ level: "warn", pretty: false });
  const lab = await Lab.up({ name: labName, managers: 1, workers: 2, logger });
  try {
    await lab.client("m1").json("POST", "/services/create", {
      body: {
        Name: "web",
        TaskTemplate: {
          ContainerSpec: { Image: "shoal-demo/busybox", Args: [process.execPath, "-e", taskServer], Mounts: hostNodeMounts },
          Placement: { Constraints: ["node.hostname==w1"] },
        },
        Mode: { Replicated: { Replicas: 1 } },
        EndpointSpec: { Ports: [{ Protocol: "tcp", TargetPort: 80, PublishedPort: publishedPort, PublishMode: "ingress" }] },
      },
    });
    const task = await waitForTask(lab);
    const address = /inet (\d+\.\d+\.\d+\.\d+)\//u.exec((await lab.exec(task.host, ["docker", "exec", task.containerId, "ip", "-o", "-4", "addr", "show", "dev", "eth1"])).stdout)?.[1];
    if (address === undefined) throw new Error("the task has no ingress address");
    // Warm up both paths (ARP, conntrack, the first map) before measuring.
    await measure(lab, "w2", address, 80, 1, wrk);
    await measure(lab, "w2", lab.host("w2").address, publishedPort, 1, wrk);
    // Paths take turns, round after round, so a noisy neighbour on the shared CPUs hits them alike; medians are reported.
    const rounds: { direct: Figures; meshLocal: Figures; meshRemote: Figures }[] = [];
    for (let round = 0; round < (quick ? 2 : 3); round += 1) {
      rounds.push({
        direct: await measure(lab, "w2", address, 80, seconds, wrk),
        meshLocal: await measure(lab, "w2", lab.host("w2").address, publishedPort, seconds, wrk),
        meshRemote: await measure(lab, "w2", lab.host("m1").address, publishedPort, seconds, wrk),
      });
    }
    const direct = medianFigures(rounds.map((item) => item.direct));
    const meshLocal = medianFigures(rounds.map((item) => item.meshLocal));
    const meshRemote = medianFigures(rounds.map((item) => item.meshRemote));
    const figures = {
      generator: wrk ? "wrk" : "node",
      seconds,
      connections,
      direct_rps: Math.round(direct.requestsPerSecond),
      direct_p99_ms: Number(direct.p99Ms.toFixed(3)),
      mesh_rps: Math.round(meshLocal.requestsPerSecond),
      mesh_p99_ms: Number(meshLocal.p99Ms.toFixed(3)),
      mesh_remote_node_rps: Math.round(meshRemote.requestsPerSecond),
      mesh_remote_node_p99_ms: Number(meshRemote.p99Ms.toFixed(3)),
      mesh_to_direct_ratio: Number((meshLocal.requestsPerSecond / direct.requestsPerSecond).toFixed(3)),
      mesh_added_p99_ms: Number((meshLocal.p99Ms - direct.p99Ms).toFixed(3)),
      errors: direct.errors + meshLocal.errors + meshRemote.errors,
    };
    process.stdout.write(`load: ${figures.generator}, ${connections} connections, ${seconds} s per path per round, medians of ${rounds.length} rounds; Node keep-alive web task on w1, client on w2\n`);
    process.stdout.write(`direct to the task (overlay)      : ${figures.direct_rps} req/s, p99 ${figures.direct_p99_ms} ms\n`);
    process.stdout.write(`published port, client's own node : ${figures.mesh_rps} req/s, p99 ${figures.mesh_p99_ms} ms\n`);
    process.stdout.write(`published port, a third node      : ${figures.mesh_remote_node_rps} req/s, p99 ${figures.mesh_remote_node_p99_ms} ms\n`);
    process.stdout.write(`mesh / direct throughput: ${figures.mesh_to_direct_ratio}; added p99: ${figures.mesh_added_p99_ms} ms\n`);
    process.stdout.write("Docker Swarm's routing mesh: no Docker engine on this host and no recorded baseline; shoal's figures only\n");
    if (json) process.stdout.write(`${JSON.stringify(figures)}\n`);
  } finally {
    await Lab.downByName(labName, { logger });
  }
}

const { values } = parseArgs({ options: { quick: { type: "boolean", default: false }, json: { type: "boolean", default: false } } });
if (process.getuid?.() !== 0) {
  process.stdout.write("bench/mesh needs root (a lab of network namespaces); nothing measured\n");
  if (values.json) process.stdout.write(`${JSON.stringify({ skipped: "needs root" })}\n`);
} else {
  await run(values.quick, values.json);
}
