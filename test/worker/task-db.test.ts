import assert from "node:assert/strict";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

import { InvalidArgumentError } from "../../src/common/errors.js";
import { TaskDatabase } from "../../src/worker/index.js";
import { newService, newTask } from "../manager/store/fixtures.js";

test("the task database round-trips tasks and the term, and refuses a file that does not parse", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "shoal-taskdb-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const database = new TaskDatabase(dir);
  assert.deepEqual(await database.load(), { tasks: [], term: 0 }, "no file means no tasks");
  const task = { ...newTask("t1", { ...newService("s1", "web"), id: "s1" }, 1, "running"), meta: { version: 4, createdAt: 1, updatedAt: 2 }, nodeId: "n1" };
  await database.save({ tasks: [{ task, reported: false }], term: 3 });
  await database.save({ tasks: [{ task, reported: true }], term: 4 });
  assert.deepEqual(await database.load(), { tasks: [{ task, reported: true }], term: 4 });
  // A changed task is a new object (the agent never edits one): its new state is what is saved.
  const failed = { ...task, status: { ...task.status, state: "failed" as const, err: "exit 1" } };
  await database.save({ tasks: [{ task: failed, reported: false }, { task, reported: true }], term: 4 });
  assert.deepEqual(await database.load(), { tasks: [{ task: failed, reported: false }, { task, reported: true }], term: 4 });
  assert.deepEqual(await readdir(join(dir, "worker")), ["tasks.json"], "no temporary file is left behind");

  await writeFile(database.path, JSON.stringify({ format: "shoal.worker.tasks", formatVersion: 1, tasks: [{ task: { ...task, status: { ...task.status, state: "dancing" } }, reported: true }] }));
  await assert.rejects(database.load(), (error: unknown) => error instanceof InvalidArgumentError && /tasks\[0\]\.task\.status\.state/.test(error.message));
  await writeFile(database.path, "{");
  await assert.rejects(database.load(), InvalidArgumentError);
  await writeFile(database.path, JSON.stringify({ format: "shoal.worker.tasks", formatVersion: 1, term: -1, tasks: [] }));
  await assert.rejects(database.load(), (error: unknown) => error instanceof InvalidArgumentError && /"term"/.test(error.message));
  // Written before the term was kept.
  await writeFile(database.path, JSON.stringify({ format: "shoal.worker.tasks", formatVersion: 1, tasks: [] }));
  assert.deepEqual(await database.load(), { tasks: [], term: 0 });
});
