import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough, Readable } from "node:stream";
import { describe, test, type TestContext } from "node:test";

import { Command } from "commander";

import { nodeUpdateAttemptsMax, registerNodeCommands } from "../../../src/cli/commands/node.js";
import { ConflictError } from "../../../src/common/errors.js";
import { registerServiceCommands } from "../../../src/cli/commands/service.js";
import { registerSwarmCommands } from "../../../src/cli/commands/swarm.js";
import { createCliContext } from "../../../src/cli/context.js";
import { createApiServer } from "../../../src/api/server.js";
import { systemRoutes } from "../../../src/api/routes/system.js";
import type { SystemInfo } from "../../../src/api/system-info.js";
import type { ServiceLogMessage, ServiceLogSource } from "../../../src/api/docker-swarm/index.js";
import { LocalClusterControl } from "../../api/swarm/harness.js";
import { nodeRoutes } from "../../../src/api/routes/nodes.js";
import { serviceRoutes } from "../../../src/api/routes/services.js";
import { swarmRoutes } from "../../../src/api/routes/swarm.js";
import { taskRoutes } from "../../../src/api/routes/tasks.js";
import { pino } from "pino";

/**
 * Stands in for the orchestrator, scheduler and workers (not this folder's concern): each
 * call gives every slot of every replicated service a running task on the one node, and
 * shuts down tasks of slots beyond the replica count.
 */
async function settle(control: LocalClusterControl): Promise<void> {
  if (control.state !== "manager") return;
  await control.store.update((tx) => {
    for (const service of tx.find("service")) {
      if (service.spec.mode.type !== "replicated") continue;
      const tasks = tx.find("task", { by: "serviceId", serviceId: service.id });
      for (let slot = 1; slot <= service.spec.mode.replicas; slot += 1) {
        if (tasks.some((task) => task.slot === slot)) continue;
        tx.create("task", {
          id: `task${service.id.slice(-4)}${String(slot).padStart(17, "0")}`,
          serviceId: service.id, serviceName: service.spec.name, slot, nodeId: control.nodeId, desiredState: "running", spec: service.spec.taskTemplate, specVersion: service.specVersion,
          endpoint: service.spec.endpointSpec, attempt: 0, status: { state: "running", timestamp: Date.now(), message: "started", err: "" },
        });
      }
      for (const task of tasks) {
        if (task.slot > service.spec.mode.replicas && task.desiredState === "running") tx.update("task", { ...task, desiredState: "shutdown" });
      }
      // The updater's part: a rollout in progress is done at once.
      const rollout = service.updateStatus;
      if (rollout?.state === "updating" || rollout?.state === "rollback_started") {
        const state = rollout.state === "updating" ? "completed" : "rollback_completed";
        tx.update("service", { ...service, updateStatus: { ...rollout, state, completedAt: Date.now(), message: `${state} by the stand-in` } });
      }
    }
  });
}

function info(control: LocalClusterControl): SystemInfo {
  const manager = control.state === "manager";
  return {
    nodeId: control.nodeId, hostname: "host0", serverVersion: "0.1.0", operatingSystem: "Debian", osVersion: "12", kernelVersion: "6.1", arch: "x64", ncpu: 2,
    memTotalBytes: 1024, dataDir: "/var/lib/shoal", containers: { running: 0, paused: 0, stopped: 0 }, images: 0, storageDriver: "overlay",
    runtime: { name: "runc", path: "/usr/sbin/runc", version: "1.1" }, cgroupDriver: "cgroupfs", cgroupVersion: "1",
    swarm: { state: manager ? "active" : "inactive", nodeAddr: "127.0.0.1", controlAvailable: manager, clusterId: manager ? "cluster1" : "", error: "" }, warnings: [], labels: [],
  };
}

/** Every task of the selected service says hello once, on stdout, then stderr. */
function helloLogs(control: LocalClusterControl): ServiceLogSource {
  return {
    logs(selector) {
      const tasks = selector.kind === "service" ? control.api.listTasks({ service: [selector.serviceId] }) : [control.api.getTask(selector.taskId)];
      const messages: ServiceLogMessage[] = tasks.flatMap((task) => {
        const context = { nodeId: task.nodeId, serviceId: task.serviceId, taskId: task.id };
        return [
          { stream: "stdout" as const, line: Buffer.from(`hello from ${task.slot}\n`), timestampMs: 0, context },
          { stream: "stderr" as const, line: Buffer.from(`warning from ${task.slot}\n`), timestampMs: 0, context },
        ];
      });
      return Readable.from(messages);
    },
  };
}

async function cli(t: TestContext, control = new LocalClusterControl()) {
  const options = { control, logs: helloLogs(control) };
  const api = await createApiServer({
    logger: pino({ level: "silent" }),
    registrars: [systemRoutes({ info: () => Promise.resolve(info(control)) }), swarmRoutes(options), serviceRoutes(options), nodeRoutes(options), taskRoutes(options)],
  });
  const dir = await mkdtemp(join(tmpdir(), "shoal-cli-swarm-"));
  const socket = join(dir, "api.sock");
  await api.listen({ kind: "unix", path: socket });
  const timer = setInterval(() => void settle(control), 20);
  t.after(async () => {
    clearInterval(timer);
    await api.close();
    await rm(dir, { recursive: true, force: true });
  });
  const run = async (...argv: string[]): Promise<string> => (await runSplit(...argv)).out;
  const runSplit = async (...argv: string[]): Promise<{ out: string; err: string }> => {
    const out = new PassThrough();
    const err = new PassThrough();
    const chunks: Buffer[] = [];
    const errors: Buffer[] = [];
    out.on("data", (chunk: Buffer) => chunks.push(chunk));
    err.on("data", (chunk: Buffer) => errors.push(chunk));
    const program = new Command("shoal").exitOverride().enablePositionalOptions();
    const context = createCliContext({ host: () => `unix://${socket}`, env: {}, out, err });
    registerSwarmCommands(program, context);
    registerNodeCommands(program, context);
    registerServiceCommands(program, context);
    await program.parseAsync(argv, { from: "user" });
    return { out: Buffer.concat(chunks).toString("utf8"), err: Buffer.concat(errors).toString("utf8") };
  };
  return { control, run, runSplit };
}

describe("shoal swarm/node/service commands against the REST routes", () => {
  test("init prints the join command; join-token -q prints the token", async (t) => {
    const { run, control } = await cli(t);
    const init = await run("swarm", "init");
    assert.match(init, /^Swarm initialized: current node \(node0+1\) is now a manager\./u);
    assert.match(init, /shoal swarm join --token SWMTKN-1-test-worker-1 127\.0\.0\.1:2377/u);
    assert.equal(await run("swarm", "join-token", "-q", "manager"), `${control.joinTokens().manager}\n`);
    assert.match(await run("swarm", "join-token", "--rotate", "worker"), /Successfully rotated worker join token/u);
    assert.equal(control.joinTokens().worker, "SWMTKN-1-test-worker-2");
  });

  test("service create waits for convergence, then ls, ps, scale and rm", async (t) => {
    const { run } = await cli(t);
    await run("swarm", "init");
    const created = await run("service", "create", "--name", "web", "--replicas", "2", "busybox", "sleep", "1d");
    assert.match(created, /overall progress: 2 out of 2 tasks/u);
    assert.match(created, /verify: Service converged\n$/u);
    const ls = await run("service", "ls");
    assert.match(ls.split("\n")[1] ?? "", /^\S{12}\s+web\s+replicated\s+2\/2\s+busybox/u);
    const ps = await run("service", "ps", "web");
    assert.match(ps, /web\.1\s+busybox\s+host0\s+Running\s+Running/u);
    assert.match(ps, /web\.2\s/u);
    const scaled = await run("service", "scale", "web=3");
    assert.match(scaled, /^web scaled to 3\n/u);
    assert.match(scaled, /overall progress: 3 out of 3 tasks/u);
    assert.equal(await run("service", "ls", "-q"), (await run("service", "inspect", "web")).match(/"ID": "(\w+)"/u)?.[1] + "\n");
    assert.equal(await run("service", "update", "--detach", "--env-add", "A=1", "--image", "busybox:1.37", "web"), "web\n");
    assert.match(await run("service", "inspect", "--pretty", "web"), /Image:\t\tbusybox:1\.37\n[^]*Env:\t\tA=1/u);
    const rolledBack = await run("service", "update", "--rollback", "web");
    assert.match(rolledBack, /verify: Service converged/u);
    assert.match(await run("service", "inspect", "--pretty", "web"), /Image:\t\tbusybox\n/u);
    assert.equal(await run("service", "rm", "web"), "web\n");
    assert.equal(await run("service", "ls", "-q"), "");
  });

  test("service logs prefixes each line with its task, stdout and stderr apart", async (t) => {
    const { run, runSplit, control } = await cli(t);
    await run("swarm", "init");
    await run("service", "create", "--name", "web", "--replicas", "2", "busybox");
    const logs = await runSplit("service", "logs", "web");
    const [task1, task2] = control.api.listTasks({ service: ["web"] }).sort((a, b) => a.slot - b.slot);
    assert.ok(task1 !== undefined && task2 !== undefined);
    assert.equal(logs.out, `web.1.${task1.id.slice(0, 12)}@host0    | hello from 1\nweb.2.${task2.id.slice(0, 12)}@host0    | hello from 2\n`);
    assert.equal(logs.err, `web.1.${task1.id.slice(0, 12)}@host0    | warning from 1\nweb.2.${task2.id.slice(0, 12)}@host0    | warning from 2\n`);
    assert.equal((await runSplit("service", "logs", "--raw", task2.id)).out, "hello from 2\n");
    assert.equal((await runSplit("service", "logs", "--no-task-ids", "web")).out, "web.1@host0    | hello from 1\nweb.2@host0    | hello from 2\n");
  });

  test("node ls, update and inspect --pretty", async (t) => {
    const { run } = await cli(t);
    await run("swarm", "init");
    assert.match(await run("node", "ls"), /node0+1 \*\s+host0\s+Ready\s+Active\s+Leader/u);
    await run("node", "update", "--availability", "drain", "--label-add", "zone=east", "host0");
    const pretty = await run("node", "inspect", "--pretty", "self");
    assert.match(pretty, /Availability:\t\tDrain/u);
    assert.match(pretty, / - zone=east/u);
  });

  test("node update retries a write that lost a race with the cluster's own node writes", async (t) => {
    const control = new LocalClusterControl();
    const { run } = await cli(t, control);
    await run("swarm", "init");
    const update = control.api.updateNode.bind(control.api);
    let conflicts = 2;
    control.api.updateNode = (reference, version, spec, options) => {
      if (conflicts === 0) return update(reference, version, spec, options);
      conflicts -= 1;
      return Promise.reject(new ConflictError(`update out of sequence: node ${reference} changed meanwhile`));
    };
    await run("node", "update", "--availability", "pause", "host0");
    assert.equal(conflicts, 0);
    assert.match(await run("node", "inspect", "--pretty", "self"), /Availability:\t\tPause/u);
    conflicts = nodeUpdateAttemptsMax;
    await assert.rejects(() => run("node", "update", "--availability", "active", "host0"), /out of sequence/u);
  });

  test("errors from the daemon reach the user with its message", async (t) => {
    const { run } = await cli(t);
    await assert.rejects(() => run("service", "ls"), /This node is not a swarm manager/u);
    await run("swarm", "init");
    await assert.rejects(() => run("service", "create", "--name", "bad_name", "busybox"), /Name: .*DNS label/u);
    await assert.rejects(() => run("service", "create", "--name", "web", "--detach", "--constraint", "node.colour==red", "busybox"), /Constraints\[0\]/u);
  });
});
