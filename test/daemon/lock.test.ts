import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

import { FailedPreconditionError } from "../../src/common/errors.js";
import { acquireDataDirLock } from "../../src/daemon/lock.js";

test("the lock is exclusive while held and free after release", async () => {
  const dir = await mkdtemp(join(tmpdir(), "shoal-lock-"));
  try {
    const lock = await acquireDataDirLock(dir);
    assert.match(await readFile(lock.path, "utf8"), new RegExp(`^${process.pid} \\d+\\n$`));
    await lock.release();
    const again = await acquireDataDirLock(dir);
    await again.release();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("a lock held by a live process is refused; one left by a dead process is taken over", async () => {
  const dir = await mkdtemp(join(tmpdir(), "shoal-lock-"));
  const child = spawn("sleep", ["30"]);
  try {
    const pid = child.pid ?? 0;
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    const start = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? "";
    await writeFile(join(dir, "shoald.lock"), `${pid} ${start}\n`);
    await assert.rejects(acquireDataDirLock(dir), (error: unknown) => error instanceof FailedPreconditionError && error.message.includes(`pid ${pid}`));
    // Same pid, other start time: the pid was reused by an unrelated process.
    await writeFile(join(dir, "shoald.lock"), `${pid} 1\n`);
    const reused = await acquireDataDirLock(dir);
    await reused.release();
    child.kill("SIGKILL");
    await new Promise((resolve) => child.once("exit", resolve));
    await writeFile(join(dir, "shoald.lock"), `${pid} ${start}\n`);
    const lock = await acquireDataDirLock(dir);
    await lock.release();
  } finally {
    child.kill("SIGKILL");
    await rm(dir, { recursive: true, force: true });
  }
});
