import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { asArray, asRecord, recordField, stringField } from "../../../src/cli/parse.js";
import { createLogger } from "../../../src/common/logger.js";
import { Lab } from "../../../src/lab/index.js";
import { waitFor } from "../../helpers/wait.js";
import { dataPlaneSkipReason } from "./netns.js";

const logger = createLogger({ level: "warn", pretty: false });
const skip = dataPlaneSkipReason() ?? false;
const labName = "netovl";

interface RunningTask {
  host: string;
  containerId: string;
}

/** The running tasks of a service with the lab host each runs on. */
async function runningTasks(lab: Lab, service: string): Promise<RunningTask[]> {
  const tasks = asArray(await lab.client("m1").json("GET", "/tasks", { query: { filters: JSON.stringify({ service: { [service]: true }, "desired-state": { running: true } }) } }), "tasks");
  const nodes = asArray(await lab.client("m1").json("GET", "/nodes"), "nodes").map((item) => asRecord(item, "node"));
  const running: RunningTask[] = [];
  for (const item of tasks) {
    const task = asRecord(item, "task");
    const status = recordField(task, "Status");
    if (stringField(status, "State") !== "running") continue;
    const node = nodes.find((candidate) => stringField(candidate, "ID") === stringField(task, "NodeID"));
    const hostname = stringField(recordField(node ?? {}, "Description"), "Hostname");
    running.push({ host: hostname, containerId: stringField(recordField(status, "ContainerStatus"), "ContainerID") });
  }
  return running;
}

/** The address of a container's first overlay interface, once it is plumbed. */
async function overlayAddress(lab: Lab, task: RunningTask): Promise<string | undefined> {
  const result = await lab.exec(task.host, ["docker", "exec", task.containerId, "ip", "-o", "-4", "addr", "show", "dev", "eth1"]);
  return /inet (\d+\.\d+\.\d+\.\d+)\//u.exec(result.stdout)?.[1];
}

async function pings(lab: Lab, task: RunningTask, address: string): Promise<boolean> {
  const result = await lab.exec(task.host, ["docker", "exec", task.containerId, "busybox", "ping", "-c", "1", "-W", "1", address]);
  return result.code === 0;
}

/** Creates a service through the Docker API (the shoal CLI has no --network flag yet). */
async function createService(lab: Lab, name: string, network: string, replicas: number, args: readonly string[] = ["sleep", "3600"]): Promise<void> {
  await lab.client("m1").json("POST", "/services/create", {
    body: {
      Name: name,
      TaskTemplate: { ContainerSpec: { Image: "shoal-demo/busybox", Args: args }, Networks: [{ Target: network }] },
      Mode: { Replicated: { Replicas: replicas } },
    },
  });
}

async function inTask(lab: Lab, task: RunningTask, command: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return lab.exec(task.host, ["docker", "exec", task.containerId, ...command]);
}

/** The addresses a name resolves to from inside a task, sorted; empty when it does not resolve. */
async function resolve(lab: Lab, task: RunningTask, name: string): Promise<string[]> {
  const result = await inTask(lab, task, ["busybox", "nslookup", name]);
  const answer = result.stdout.split(/\nName:/u).slice(1).join("\n");
  return [...answer.matchAll(/Address(?: \d+)?:\s*(\d+\.\d+\.\d+\.\d+)/gu)].map((match) => match[1] ?? "").sort();
}

/** One HTTP request from inside a task (busybox nc: Debian's static busybox wget crashes); the body's last line. */
async function fetchBody(lab: Lab, task: RunningTask, host: string): Promise<{ code: number; body: string; stderr: string }> {
  const result = await inTask(lab, task, ["sh", "-c", `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 ${host} 80`]);
  const lines = result.stdout.trim().split("\n");
  const ok = result.code === 0 && /^HTTP\/1\.[01] 200/u.test(lines[0] ?? "");
  return { code: ok ? 0 : 1, body: lines.at(-1)?.trim() ?? "", stderr: `${result.stderr} ${result.stdout.slice(0, 200)}` };
}

/** Counts which replica answers each of `count` HTTP requests to `address`:`port`, sent from inside `from`. */
const countScript = `
const http = require("node:http");
const [address, port, count] = process.argv.slice(1);
const counts = {};
let failures = 0;
(async () => {
  for (let i = 0; i < Number(count); i += 1) {
    const body = await new Promise((resolve) => {
      const request = http.get({ host: address, port: Number(port), path: "/", agent: false, timeout: 2000 }, (response) => {
        let text = "";
        response.on("data", (chunk) => (text += chunk));
        response.on("end", () => resolve(text.trim()));
      });
      request.on("timeout", () => request.destroy(new Error("timeout")));
      request.on("error", () => resolve(undefined));
    });
    if (body === undefined) failures += 1;
    else counts[body] = (counts[body] ?? 0) + 1;
  }
  process.stdout.write(JSON.stringify({ counts, failures }));
})();
`;

async function countReplies(lab: Lab, from: string, address: string, port: number, count: number): Promise<{ counts: Record<string, number>; failures: number }> {
  const result = await lab.exec(from, [process.execPath, "-e", countScript, address, String(port), String(count)], { timeoutMs: 60_000 });
  assert.equal(result.code, 0, result.stderr);
  const parsed: unknown = JSON.parse(result.stdout);
  const record = asRecord(parsed, "counts");
  const counts: Record<string, number> = {};
  for (const [key, value] of Object.entries(asRecord(record["counts"], "counts"))) counts[key] = Number(value);
  return { counts, failures: Number(record["failures"]) };
}

/** Sends one request every `gapMs` for `seconds` and prints the wall-clock times (ms) of the failed ones. */
const loadScript = `
const http = require("node:http");
const [address, port, seconds, gapMs] = process.argv.slice(1);
const failures = [];
let sent = 0;
const end = Date.now() + Number(seconds) * 1000;
const one = () => new Promise((resolve) => {
  const at = Date.now();
  const request = http.get({ host: address, port: Number(port), path: "/", agent: false, timeout: 1000 }, (response) => {
    response.resume();
    response.on("end", resolve);
  });
  request.on("timeout", () => request.destroy(new Error("timeout")));
  request.on("error", () => { failures.push(at); resolve(); });
});
(async () => {
  while (Date.now() < end) {
    sent += 1;
    await one();
    await new Promise((resolve) => setTimeout(resolve, Number(gapMs)));
  }
  process.stdout.write(JSON.stringify({ sent, failures }));
})();
`;

async function scale(lab: Lab, name: string, replicas: number): Promise<void> {
  const result = await lab.exec("m1", ["shoal", "service", "scale", "--detach", `${name}=${replicas}`]);
  assert.equal(result.code, 0, result.stderr);
}

describe("overlay networks on the lab", { skip, timeout: 180_000 }, () => {
  let lab: Lab;
  before(async () => {
    lab = await Lab.up({ name: labName, managers: 1, workers: 3, logger });
  });
  after(async () => {
    await Lab.downByName(labName, { logger });
  });

  test("tasks on different nodes reach each other over their overlay; another overlay cannot reach them", async () => {
    for (const network of ["backend", "other"]) {
      const created = await lab.exec("m1", ["shoal", "network", "create", "-d", "overlay", network]);
      assert.equal(created.code, 0, created.stderr);
    }
    await createService(lab, "web", "backend", 3);
    await createService(lab, "intruder", "other", 1);
    let seen = "";
    const web = await waitFor(
      "3 web tasks running on 3 nodes with overlay addresses",
      async () => {
        const tasks = await runningTasks(lab, "web");
        const addresses = await Promise.all(tasks.map((task) => overlayAddress(lab, task)));
        seen = JSON.stringify(tasks.map((task, index) => [task.host, addresses[index] ?? null]));
        if (tasks.length !== 3 || new Set(tasks.map((task) => task.host)).size !== 3) return undefined;
        return addresses.every((address) => address !== undefined) ? tasks.map((task, index) => ({ task, address: addresses[index] ?? "" })) : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 500 },
    ).catch((error: unknown) => assert.fail(`${String(error)}; last seen ${seen}`));
    const [first, ...others] = web;
    assert.ok(first !== undefined);
    for (const other of others) {
      assert.ok(await waitFor(`${first.task.host} reaches ${other.task.host} at ${other.address}`, async () => ((await pings(lab, first.task, other.address)) ? true : undefined), { timeoutMs: 10_000 }));
    }
    const [intruder] = await waitFor("the intruder running", async () => {
      const tasks = await runningTasks(lab, "intruder");
      return tasks.length === 1 && (await overlayAddress(lab, tasks[0] as RunningTask)) !== undefined ? tasks : undefined;
    }, { timeoutMs: 30_000, intervalMs: 500 });
    assert.ok(intruder !== undefined);
    for (const target of web) assert.equal(await pings(lab, intruder, target.address), false, `a task on another overlay reached ${target.address}`);
  });

  test("a service's name resolves to its VIP, tasks.NAME to its tasks, the VIP spreads connections evenly, and records follow scaling", async () => {
    await createService(lab, "hello", "backend", 3, ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www"]);
    await createService(lab, "client", "backend", 1);
    const [client] = await waitFor("the client running with its overlay", async () => {
      const tasks = await runningTasks(lab, "client");
      return tasks.length === 1 && (await overlayAddress(lab, tasks[0] as RunningTask)) !== undefined ? tasks : undefined;
    }, { timeoutMs: 30_000, intervalMs: 250 });
    assert.ok(client !== undefined);
    const taskAddresses = await waitFor("tasks.hello lists 3 ready tasks", async () => {
      const addresses = await resolve(lab, client, "tasks.hello");
      return addresses.length === 3 ? addresses : undefined;
    }, { timeoutMs: 30_000, intervalMs: 250 });
    const [vip] = await resolve(lab, client, "hello");
    assert.ok(vip !== undefined && !taskAddresses.includes(vip), `hello should resolve to a VIP apart from its tasks, got ${String(vip)}`);
    const counts = new Map<string, number>();
    const requests = 30;
    for (let request = 0; request < requests; request += 1) {
      const answer = await fetchBody(lab, client, "hello");
      assert.equal(answer.code, 0, answer.stderr);
      const hostname = answer.body;
      counts.set(hostname, (counts.get(hostname) ?? 0) + 1);
    }
    assert.equal(counts.size, 3, `every replica answers: ${JSON.stringify([...counts])}`);
    for (const [hostname, count] of counts) assert.ok(count >= 0.25 * requests && count <= 0.4 * requests, `${hostname} got ${count} of ${requests}`);
    assert.deepEqual(await resolve(lab, client, "intruder"), [], "a service on another network does not resolve");

    await scale(lab, "hello", 2);
    await waitFor("tasks.hello follows the scale-down", async () => ((await resolve(lab, client, "tasks.hello")).length === 2 ? true : undefined), { timeoutMs: 15_000, intervalMs: 100 });
    for (let request = 0; request < 6; request += 1) {
      const answer = await fetchBody(lab, client, "hello");
      assert.equal(answer.code, 0, `request ${request} after the scale-down failed: ${answer.stderr}`);
    }
  });

  test("a published port answers on every node and localhost, spreading requests over all replicas cluster-wide", async () => {
    await lab.client("m1").json("POST", "/services/create", {
      body: {
        Name: "mesh",
        TaskTemplate: {
          ContainerSpec: { Image: "shoal-demo/busybox", Args: ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www"] },
          Placement: { Constraints: ["node.role==worker"] },
        },
        Mode: { Replicated: { Replicas: 3 } },
        EndpointSpec: { Ports: [{ Protocol: "tcp", TargetPort: 80, PublishedPort: 8080, PublishMode: "ingress" }] },
      },
    });
    await waitFor("3 mesh replicas on the 3 workers", async () => {
      const tasks = await runningTasks(lab, "mesh");
      return tasks.length === 3 && new Set(tasks.map((task) => task.host)).size === 3 ? true : undefined;
    }, { timeoutMs: 60_000, intervalMs: 250 });
    const requests = 300;
    for (const target of ["m1", "w1", "w2", "w3"]) {
      const from = target === "w1" ? "w2" : "w1";
      const address = lab.host(target).address;
      const { counts } = await waitFor(`requests to ${target} reach all 3 replicas`, async () => {
        const probe = await countReplies(lab, from, address, 8080, 6);
        return Object.keys(probe.counts).length === 3 && probe.failures === 0 ? probe : undefined;
      }, { timeoutMs: 15_000, intervalMs: 250 });
      assert.ok(counts !== undefined);
      const result = await countReplies(lab, from, address, 8080, requests);
      assert.equal(result.failures, 0, `requests to ${target} failed`);
      assert.equal(Object.keys(result.counts).length, 3, `${target}: ${JSON.stringify(result.counts)}`);
      for (const [replica, count] of Object.entries(result.counts)) {
        assert.ok(count >= 0.25 * requests && count <= 0.4 * requests, `${target}: replica ${replica} answered ${count} of ${requests}`);
      }
    }
    const local = await countReplies(lab, "m1", "127.0.0.1", 8080, 30);
    assert.equal(local.failures, 0, "the published port answers on the node's own localhost");
    assert.equal(Object.keys(local.counts).length, 3);
  });

  test("a host-mode port answers only on the node that runs the task", async () => {
    await lab.client("m1").json("POST", "/services/create", {
      body: {
        Name: "pinned",
        TaskTemplate: {
          ContainerSpec: { Image: "shoal-demo/busybox", Args: ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www"] },
          Placement: { Constraints: ["node.hostname==w3"] },
        },
        Mode: { Replicated: { Replicas: 1 } },
        EndpointSpec: { Ports: [{ Protocol: "tcp", TargetPort: 80, PublishedPort: 9090, PublishMode: "host" }] },
      },
    });
    const answered = await waitFor("the host port answers on w3", async () => {
      const result = await countReplies(lab, "w1", lab.host("w3").address, 9090, 3);
      return result.failures === 0 ? result : undefined;
    }, { timeoutMs: 30_000, intervalMs: 250 });
    assert.equal(Object.keys(answered.counts).length, 1);
    const elsewhere = await countReplies(lab, "w3", lab.host("w1").address, 9090, 2);
    assert.equal(elsewhere.failures, 2, "a node without the task does not publish the port");
  });

  test("scaling down under load: within a second no connection goes to a removed task", async () => {
    const load = lab.exec("m1", [process.execPath, "-e", loadScript, lab.host("m1").address, "8080", "9", "20"], { timeoutMs: 30_000 });
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    await scale(lab, "mesh", 2);
    const scaledAt = Date.now();
    await waitFor("mesh at 2 running tasks", async () => ((await runningTasks(lab, "mesh")).length === 2 ? true : undefined), { timeoutMs: 15_000, intervalMs: 100 });
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    // A replacement joins once running, which for a task without a health check may be
    // before its server listens: only the scale-down's window is judged.
    const scaledUpAt = Date.now();
    await scale(lab, "mesh", 3);
    const result = await load;
    assert.equal(result.code, 0, result.stderr);
    const parsed = asRecord(JSON.parse(result.stdout), "load");
    const failures = asArray(parsed["failures"], "failures").map(Number);
    assert.ok(Number(parsed["sent"]) > 100, `the load ran: ${result.stdout}`);
    const late = failures.filter((at) => at > scaledAt + 1_000 && at < scaledUpAt);
    assert.deepEqual(late, [], `requests failed more than 1 s after the scale-down (at ${scaledAt}): ${JSON.stringify(failures)}`);
  });

  test("the local traffic policy keeps the client's address and answers only where a task runs", async () => {
    const script = "mkdir -p /www/cgi-bin && printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho $REMOTE_ADDR\\n' > /www/cgi-bin/ip && busybox chmod +x /www/cgi-bin/ip && exec httpd -f -p 80 -h /www";
    await lab.client("m1").json("POST", "/services/create", {
      body: {
        Name: "keep",
        Labels: { "shoal.network.traffic-policy": "local" },
        TaskTemplate: { ContainerSpec: { Image: "shoal-demo/busybox", Args: ["sh", "-c", script] }, Placement: { Constraints: ["node.hostname==w2"] } },
        Mode: { Replicated: { Replicas: 1 } },
        EndpointSpec: { Ports: [{ Protocol: "tcp", TargetPort: 80, PublishedPort: 8181, PublishMode: "ingress" }] },
      },
    });
    const fetchClientAddress = `require("node:http").get({ host: process.argv[1], port: 8181, path: "/cgi-bin/ip", agent: false, timeout: 1000, insecureHTTPParser: true }, (r) => { let t = ""; r.on("data", (c) => (t += c)); r.on("end", () => process.stdout.write(t.trim())); }).on("error", () => process.exit(1)).on("timeout", () => process.exit(1));`;
    const seen = await waitFor("w2 answers on the local-policy port", async () => {
      const result = await lab.exec("w1", [process.execPath, "-e", fetchClientAddress, lab.host("w2").address], { timeoutMs: 5_000 });
      return result.code === 0 && result.stdout !== "" ? result.stdout : undefined;
    }, { timeoutMs: 30_000, intervalMs: 250 });
    // busybox httpd gives CGI scripts the peer as "[::ffff:a.b.c.d]"; its CGI answers end lines with LF only.
    assert.equal(seen.replace(/^\[::ffff:(.*)\]$/u, "$1"), lab.host("w1").address, "the task sees the client's own address");
    const elsewhere = await lab.exec("w3", [process.execPath, "-e", fetchClientAddress, lab.host("w1").address], { timeoutMs: 5_000 });
    assert.notEqual(elsewhere.code, 0, "a node without a local task refuses the port");
  });
});
