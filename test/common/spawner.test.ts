import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test, type TestContext } from "node:test";

import { pino } from "pino";

import { routeCommandsThrough, runCommand, spawnDetached, startDetached, type CommandOptions, type CommandResult } from "../../src/common/command.js";
import { CancelledError, UnavailableError } from "../../src/common/errors.js";
import { CommandSpawner, parseSpawnerReply, parseSpawnerRequest, spawnerRequestBytesMax } from "../../src/common/spawner.js";
import { processAlive } from "../helpers/process.js";
import { waitFor } from "../helpers/wait.js";

const logger = pino({ level: "silent" });

function startSpawner(t: TestContext): CommandSpawner {
  const spawner = new CommandSpawner({ logger });
  t.after(() => spawner.close());
  return spawner;
}

type Run = (file: string, args: readonly string[], options?: CommandOptions) => Promise<CommandResult>;

/** The pid of whoever forks commands: the spawner process, not this one. */
async function forkerPid(run: Run): Promise<number> {
  const { stdout } = await run("/bin/sh", ["-c", "echo $PPID"]);
  return Number(stdout.trim());
}

function runOf(spawner: CommandSpawner): Run {
  return (file, args, options) => spawner.run(file, args, options);
}

/** Starts `sleep 30` under `run` and returns its pid (read from a file) and its pending result. */
async function startSleeper(t: TestContext, run: Run, signal?: AbortSignal): Promise<{ pid: number; done: Promise<unknown> }> {
  const dir = await mkdtemp(join(tmpdir(), "shoal-spawner-"));
  const pidFile = join(dir, "pid");
  const done = run("/bin/sh", ["-c", `echo $$ > ${pidFile}; exec sleep 30`], signal === undefined ? {} : { signal });
  done.catch(() => undefined);
  const pid = await waitFor("the sleeper's pid", async () => {
    const text = await readFile(pidFile, "utf8").catch(() => "");
    return text.endsWith("\n") ? Number(text.trim()) : undefined;
  });
  t.after(async () => {
    if (await processAlive(pid)) process.kill(pid, "SIGKILL");
    await rm(dir, { recursive: true, force: true });
  });
  return { pid, done };
}

test("commands run in the spawner process with their exit code, output, input and environment", async (t) => {
  const spawner = startSpawner(t);
  const pid = await forkerPid(runOf(spawner));
  assert.notEqual(pid, process.pid, "the command was forked by the test process itself");
  assert.deepEqual(await spawner.run("/bin/sh", ["-c", "echo out; echo err >&2; exit 3"]), { code: 3, stdout: "out\n", stderr: "err\n" });
  assert.equal((await spawner.run("/bin/cat", [], { input: "piped in" })).stdout, "piped in");
  assert.equal((await spawner.run("/bin/sh", ["-c", "echo $SPAWNER_TEST"], { env: { SPAWNER_TEST: "given" } })).stdout, "given\n");
  const concurrent = await Promise.all(Array.from({ length: 20 }, (_, index) => spawner.run("/bin/echo", [String(index)])));
  assert.deepEqual(
    concurrent.map((result) => result.stdout),
    Array.from({ length: 20 }, (_, index) => `${index}\n`),
  );
  assert.equal(await forkerPid(runOf(spawner)), pid, "one spawner process serves every command");
});

test("a request larger than spawnerRequestBytesMax is refused before it reaches the spawner", async (t) => {
  const spawner = startSpawner(t);
  await assert.rejects(spawner.run("/bin/cat", [], { input: "x".repeat(spawnerRequestBytesMax + 1) }), (error: unknown) => {
    assert.ok(error instanceof UnavailableError);
    assert.match(error.message, /exceed/);
    return true;
  });
  assert.equal((await spawner.run("/bin/cat", [], { input: "x".repeat(1000) })).stdout.length, 1000);
});

test("a program that cannot start is UnavailableError naming it", async (t) => {
  const spawner = startSpawner(t);
  await assert.rejects(spawner.run("/nonexistent/shoal-tool", []), (error: unknown) => {
    assert.ok(error instanceof UnavailableError);
    assert.match(error.message, /shoal-tool/);
    return true;
  });
});

test("cancelling a command kills it and rejects with CancelledError", async (t) => {
  const spawner = startSpawner(t);
  const controller = new AbortController();
  const sleeper = await startSleeper(t, runOf(spawner), controller.signal);
  controller.abort();
  await assert.rejects(sleeper.done, CancelledError);
  await waitFor("the cancelled command to be killed", async () => ((await processAlive(sleeper.pid)) ? undefined : true));
});

test("a command past its timeout is killed and reports code 128", async (t) => {
  const spawner = startSpawner(t);
  const started = performance.now();
  const result = await spawner.run("/bin/sleep", ["30"], { timeoutMs: 100 });
  assert.equal(result.code, 128);
  assert.ok(performance.now() - started < 10_000);
});

test("when the spawner dies, running commands fail with UnavailableError and the next command starts a new one", async (t) => {
  const spawner = startSpawner(t);
  const first = await forkerPid(runOf(spawner));
  const sleeper = await startSleeper(t, runOf(spawner));
  process.kill(first, "SIGKILL");
  await assert.rejects(sleeper.done, UnavailableError);
  const second = await forkerPid(runOf(spawner));
  assert.notEqual(second, first);
  assert.notEqual(second, process.pid);
});

test("close waits for the spawner to exit; later commands run here", async (t) => {
  const spawner = startSpawner(t);
  const pid = await forkerPid(runOf(spawner));
  await spawner.close();
  assert.equal(await processAlive(pid), false, "the spawner outlived close");
  assert.equal(await forkerPid(runOf(spawner)), process.pid);
});

test("runCommand goes through the routed runner until the route is removed", async (t) => {
  const spawner = startSpawner(t);
  const stopRouting = routeCommandsThrough(spawner);
  try {
    assert.notEqual(await forkerPid(runCommand), process.pid);
  } finally {
    stopRouting();
  }
  assert.equal(await forkerPid(runCommand), process.pid);
});

test("startDetached answers with the first line the program writes on fd 3, and leaves it running", async (t) => {
  const spawner = startSpawner(t);
  const viaSpawner = await spawner.startDetached("/bin/sh", ["-c", "echo $PPID $$ >&3; echo more >&3; exec sleep 30"]);
  const [parent, pid] = viaSpawner.trim().split(" ").map(Number);
  assert.match(viaSpawner, /^\d+ \d+\n$/);
  assert.ok(parent !== undefined && pid !== undefined);
  t.after(async () => {
    if (await processAlive(pid)) process.kill(pid, "SIGKILL");
  });
  assert.notEqual(parent, process.pid, "the spawner did not start it");
  assert.ok(await processAlive(pid), "the program did not outlive the answer");
  assert.equal(await spawnDetached("/bin/sh", ["-c", "echo ready $PPID >&3; exec sleep 0.5"]), `ready ${process.pid}\n`);
  // What a program that closes the pipe without a newline wrote, or nothing, is the answer.
  assert.equal(await spawner.startDetached("/bin/sh", ["-c", "printf partial >&3"]), "partial");
  assert.equal(await spawner.startDetached("/bin/true", []), "");
  assert.equal((await spawner.startDetached("/bin/sh", ["-c", "echo $GIVEN >&3"], { env: { GIVEN: "env" } })), "env\n");
  await assert.rejects(spawner.startDetached("/nonexistent/shoal-daemon", []), UnavailableError);
  const stopRouting = routeCommandsThrough(spawner);
  try {
    assert.notEqual(await startDetached("/bin/sh", ["-c", "echo $PPID >&3"]), `${process.pid}\n`);
    // conmon writes files into its working directory: the spawner must honour it.
    assert.equal(await startDetached("/bin/sh", ["-c", "pwd >&3"], { cwd: "/tmp" }), "/tmp\n");
  } finally {
    stopRouting();
  }
});

test("requests and replies from the other process are parsed, not trusted", () => {
  assert.deepEqual(parseSpawnerRequest({ kind: "run", id: 1, file: "/bin/true", args: [] }), { kind: "run", id: 1, file: "/bin/true", args: [] });
  assert.deepEqual(parseSpawnerRequest({ kind: "cancel", id: 2 }), { kind: "cancel", id: 2 });
  assert.throws(() => parseSpawnerRequest({ kind: "run", id: 1, file: "/bin/true", args: [1] }), TypeError);
  assert.throws(() => parseSpawnerRequest({ kind: "run", id: -1, file: "/bin/true", args: [] }), TypeError);
  assert.throws(() => parseSpawnerRequest({ kind: "run", id: 1, file: "", args: [] }), TypeError);
  assert.throws(() => parseSpawnerRequest({ kind: "run", id: 1, file: "x", args: [], env: { A: 1 } }), TypeError);
  assert.throws(() => parseSpawnerRequest({ kind: "exec", id: 1 }), TypeError);
  assert.deepEqual(parseSpawnerReply({ id: 3, result: { code: 0, stdout: "a", stderr: "" } }), { id: 3, result: { code: 0, stdout: "a", stderr: "" } });
  assert.deepEqual(parseSpawnerReply({ id: 3, error: "no" }), { id: 3, error: "no" });
  assert.deepEqual(parseSpawnerReply({ id: 4, ready: "x\n" }), { id: 4, ready: "x\n" });
  assert.deepEqual(parseSpawnerRequest({ kind: "start", id: 5, file: "/bin/true", args: ["a"] }), { kind: "start", id: 5, file: "/bin/true", args: ["a"] });
  assert.deepEqual(parseSpawnerRequest({ kind: "start", id: 5, file: "/bin/true", args: [], cwd: "/tmp" }), { kind: "start", id: 5, file: "/bin/true", args: [], cwd: "/tmp" });
  assert.throws(() => parseSpawnerRequest({ kind: "start", id: 5, file: "/bin/true", args: [], cwd: 7 }), TypeError);
  assert.throws(() => parseSpawnerReply({ id: 3, result: { code: "0", stdout: "", stderr: "" } }), TypeError);
  assert.throws(() => parseSpawnerReply(null), TypeError);
});
