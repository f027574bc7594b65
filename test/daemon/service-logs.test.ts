import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { rm } from "node:fs/promises";
import { request } from "node:http";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";

import { asArray, asRecord, numberField, recordField, stringField } from "../../src/cli/parse.js";
import { shoal, shoalOk, shoalPath, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";
import { run } from "../helpers/run.js";
import { waitFor } from "../helpers/wait.js";

const rootReason = process.getuid?.() === 0 ? false : "needs root (mounts, namespaces, cgroups)";

const dockerCli = "/usr/local/bin/docker";
const service = "lg";
// Each task says hello once, on stderr too, then ticks every 300 ms so that --follow sees new lines.
const script = 'echo "hello from $HOSTNAME"; echo "oops on stderr" >&2; i=0; while true; do i=$((i+1)); echo "tick $i"; sleep 0.3; done';

interface RunningTask {
  id: string;
  nodeId: string;
  slot: number;
}

/** The service's tasks that run (desired and observed). */
async function runningTasks(daemon: TestDaemon, name: string): Promise<RunningTask[]> {
  const filters = JSON.stringify({ service: [name], "desired-state": ["running"] });
  return asArray(await daemon.client().json("GET", "/tasks", { query: { filters } }), "tasks")
    .map((item) => asRecord(item, "task"))
    .filter((task) => stringField(recordField(task, "Status"), "State") === "running")
    .map((task) => ({ id: stringField(task, "ID"), nodeId: stringField(task, "NodeID"), slot: numberField(task, "Slot") }));
}

/** docker's `service logs` prefix: "lg.<slot>.<12-char task id>@<hostname>    | ". */
function prefixed(stdout: string, slot: number, taskId: string): string[] {
  const prefix = new RegExp(`^${service}\\.${slot}\\.${taskId.slice(0, 12)}@\\S+\\s+\\| (.*)$`);
  return stdout
    .split("\n")
    .map((line) => prefix.exec(line)?.[1])
    .filter((text): text is string => text !== undefined);
}

describe("service and task logs across a manager and a worker", { skip: rootReason }, () => {
  let manager: TestDaemon;
  let worker: TestDaemon;
  let tasks: RunningTask[] = [];
  let workerNodeId = "";

  before(async () => {
    manager = await startTestDaemon();
    worker = await startTestDaemon();
    await Promise.all([shoalOk(manager, "image", "build-demo"), shoalOk(worker, "image", "build-demo")]);
    await shoalOk(manager, "swarm", "init");
    const token = (await shoalOk(manager, "swarm", "join-token", "-q", "worker")).trim();
    await shoalOk(worker, "swarm", "join", "--token", token, manager.grpcAddress);
    workerNodeId = stringField(recordField(asRecord(await worker.client().json("GET", "/info"), "info"), "Swarm"), "NodeID");
    await shoalOk(manager, "service", "create", "--detach", "--replicas", "2", "--name", service, "shoal-demo/busybox", "sh", "-c", script);
    tasks = await waitFor("two running tasks on two nodes", async () => {
      const found = await runningTasks(manager, service);
      return found.length === 2 && new Set(found.map((task) => task.nodeId)).size === 2 ? found : undefined;
    }, { timeoutMs: 45_000, intervalMs: 200 });
  });

  after(async () => {
    try {
      if (manager !== undefined) await shoal(manager, "service", "rm", service).catch(() => undefined);
      if (worker !== undefined && (worker.process.exitCode !== null || worker.process.signalCode !== null)) {
        // A stopped shoald leaves its containers running (by design): start it again so cleanup can remove them.
        const revived = await startTestDaemon({ dir: worker.dir });
        await revived.cleanup();
        await rm(worker.dir, { recursive: true, force: true });
      } else {
        await worker?.cleanup();
      }
    } finally {
      await manager?.cleanup();
    }
  });

  test("`shoal service logs` prints both tasks' lines (stdout and stderr), each with docker's name.slot.task@node prefix", async () => {
    const { stdout, stderr } = await waitFor("lines of both tasks", async () => {
      const result = await shoal(manager, "service", "logs", service);
      assert.equal(result.code, 0, result.stderr);
      return tasks.every((task) => prefixed(result.stdout, task.slot, task.id).some((text) => text.startsWith("tick"))) ? result : undefined;
    }, { timeoutMs: 15_000, intervalMs: 300 });
    for (const task of tasks) {
      const lines = prefixed(stdout, task.slot, task.id);
      assert.ok(lines.some((text) => text.startsWith("hello from ")), `no hello from task ${task.id} (node ${task.nodeId}):\n${stdout}`);
      // The container's stderr stays stderr, as with docker.
      assert.deepEqual(prefixed(stderr, task.slot, task.id), ["oops on stderr"], `stderr of task ${task.id}:\n${stderr}`);
    }
  });

  test("--tail 1 prints exactly one line per task", async () => {
    const result = await shoal(manager, "service", "logs", "--tail", "1", service);
    assert.equal(result.code, 0, result.stderr);
    // A young task's last line may be its stderr one: count both streams.
    const output = result.stdout + result.stderr;
    const lines = output.split("\n").filter((line) => line !== "");
    assert.equal(lines.length, 2, output);
    for (const task of tasks) assert.equal(prefixed(output, task.slot, task.id).length, 1, output);
  });

  test("--follow keeps streaming: it shows lines written after it started", async (t) => {
    const child = spawn(process.execPath, [shoalPath, "-H", manager.host, "service", "logs", "--follow", "--tail", "0", service], { stdio: ["ignore", "pipe", "pipe"] });
    t.after(() => {
      child.kill("SIGKILL");
    });
    let output = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      output += chunk;
    });
    // --tail 0 shows nothing old: every tick seen was written after the request, on both nodes.
    await waitFor("new ticks from both tasks", () => (tasks.every((task) => prefixed(output, task.slot, task.id).some((text) => text.startsWith("tick"))) ? true : undefined), {
      timeoutMs: 15_000,
      intervalMs: 100,
    });
    assert.ok(!output.includes("hello from"), `--tail 0 printed old lines:\n${output}`);
  });

  test("task logs: `shoal service logs TASK-ID` and GET /tasks/{id}/logs read one task, on the worker node", async () => {
    const onWorker = tasks.find((task) => task.nodeId === workerNodeId);
    assert.ok(onWorker !== undefined, `no task on the worker ${workerNodeId}`);
    // The last 3 lines may still include the task's one stderr line (its streams are merged
    // by time) until it has ticked a few times: wait for three on stdout.
    const stdout = await waitFor("three stdout lines in the task's last three", async () => {
      const output = await shoalOk(manager, "service", "logs", "--tail", "3", onWorker.id);
      return output.split("\n").filter((line) => line !== "").length === 3 ? output : undefined;
    }, { timeoutMs: 10_000, intervalMs: 300 });
    assert.equal(prefixed(stdout, onWorker.slot, onWorker.id).length, 3, stdout);
    const response = await fetchLogs(manager, `/tasks/${onWorker.id}/logs?stdout=1&stderr=1&tail=2`);
    assert.equal(response.status, 200);
    assert.equal(response.frames, 2);
  });

  test("a task that does not exist answers 404", async () => {
    const response = await fetchLogs(manager, "/tasks/doesnotexist/logs?stdout=1");
    assert.equal(response.status, 404);
  });

  test("the docker CLI prints the service's logs", { skip: existsSync(dockerCli) ? false : `${dockerCli} is not installed` }, async () => {
    const env = { DOCKER_HOST: manager.host, DOCKER_CONFIG: join(manager.dir, "docker-config") };
    const result = await run(dockerCli, ["service", "logs", "--tail", "2", service], { env, timeoutMs: 30_000 });
    assert.equal(result.code, 0, result.stderr);
    const output = result.stdout + result.stderr;
    for (const task of tasks) assert.equal(prefixed(output, task.slot, task.id).length, 2, output);
  });

  test("a follower manager serves logs too: it relays the leader's broker over mTLS gRPC", async (t) => {
    // Joined after the tasks were placed, so they stay on the manager and the worker.
    const follower = await startTestDaemon();
    t.after(async () => {
      // Leaving keeps the first manager a one-voter majority for the tests after this one.
      await shoal(follower, "swarm", "leave", "--force");
      await follower.cleanup();
    });
    const token = (await shoalOk(manager, "swarm", "join-token", "-q", "manager")).trim();
    await shoalOk(follower, "swarm", "join", "--token", token, manager.grpcAddress);
    const stdout = await waitFor("logs through the follower", async () => {
      const result = await shoal(follower, "service", "logs", "--tail", "1", service);
      return result.code === 0 && tasks.every((task) => prefixed(result.stdout, task.slot, task.id).length === 1) ? result.stdout : undefined;
    }, { timeoutMs: 20_000, intervalMs: 300 });
    assert.equal(stdout.split("\n").filter((line) => line !== "").length, 2, stdout);
  });

  test("with the worker down, logs still answer: the manager's task lines, and a stderr line saying the worker's task is missing", async () => {
    await worker.stop();
    const onWorker = tasks.find((task) => task.nodeId === workerNodeId);
    const onManager = tasks.find((task) => task.nodeId !== workerNodeId);
    assert.ok(onWorker !== undefined && onManager !== undefined);
    const result = await waitFor("the worker's listener to be gone", async () => {
      const answer = await shoal(manager, "service", "logs", "--tail", "1", service);
      return answer.stderr.includes("is not connected to the leader") ? answer : undefined;
    }, { timeoutMs: 15_000, intervalMs: 300 });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(prefixed(result.stdout, onManager.slot, onManager.id).length, 1, result.stdout);
    assert.match(prefixed(result.stderr, onWorker.slot, onWorker.id).join("\n"), new RegExp(`logs of task ${onWorker.id} are incomplete: node ${workerNodeId} is not connected`));
  });
});

/** A raw request over the daemon's socket, counting multiplexed frames in the answer. */
async function fetchLogs(daemon: TestDaemon, path: string): Promise<{ status: number; frames: number }> {
  return new Promise((resolve, reject) => {
    const call = request({ socketPath: daemon.socketPath, path, method: "GET" }, (response) => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("end", () => {
        const body = Buffer.concat(chunks);
        let frames = 0;
        for (let offset = 0; response.statusCode === 200 && offset + 8 <= body.length; offset += 8 + body.readUInt32BE(offset + 4)) frames += 1;
        resolve({ status: response.statusCode ?? 0, frames });
      });
      response.on("error", reject);
    });
    call.on("error", reject);
    call.end();
  });
}
