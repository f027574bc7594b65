import assert from "node:assert/strict";
import { readFile, stat } from "node:fs/promises";
import { test } from "node:test";

import { containerSkipReason, createEngineFixture, readLogs, waitFor, waitForLog } from "./helpers.js";

const options = { skip: containerSkipReason() ?? false, timeout: 30_000 };
const mib = 1024 * 1024;

test("a container allocating past its memory limit is OOM-killed and reported OOMKilled", options, async (t) => {
  // conmon also writes an "oom" file into its working directory, which must not be ours.
  const strayBefore = await stat("oom").catch(() => null);
  const engine = await (await createEngineFixture(t)).open();
  const { id } = await engine.containers.create({
    image: "busybox",
    // Doubling a shell string grows memory without bound.
    cmd: ["sh", "-c", "x=a; while :; do x=$x$x; done"],
    networkMode: "none",
    resources: { memoryBytes: 16 * mib },
  });
  await engine.containers.start(id);
  const status = await engine.containers.wait(id);
  assert.equal(status.exitCode, 137);
  assert.equal(status.oomKilled, true);
  assert.equal(engine.containers.inspect(id).state.oomKilled, true);
  if (strayBefore === null) assert.equal(await stat("oom").catch(() => null), null, `conmon left an oom file in ${process.cwd()}`);
});

test("limits reach the cgroup and stats read it: memory, cpu quota, pids", options, async (t) => {
  const engine = await (await createEngineFixture(t)).open();
  const { id } = await engine.containers.create({
    image: "busybox",
    // The subshell dies at its first failed fork; the main shell carries on without forking.
    cmd: ["sh", "-c", "(for i in 1 2 3 4 5 6 7 8; do sleep 30 & done); echo spawned; exec sleep 30"],
    networkMode: "none",
    resources: { memoryBytes: 64 * mib, cpus: 0.5, pidsLimit: 4, cpuShares: 512 },
  });
  await engine.containers.start(id);
  await waitForLog(engine, id, "spawned");
  const cgroup = `/shoal-${engine.info().engineId}/${id}`;
  assert.equal((await readFile(`/sys/fs/cgroup/cpu${cgroup}/cpu.cfs_quota_us`, "utf8")).trim(), "50000");
  assert.equal((await readFile(`/sys/fs/cgroup/cpu${cgroup}/cpu.shares`, "utf8")).trim(), "512");
  const stats = await engine.containers.stats(id);
  assert.equal(stats.memoryLimitBytes, 64 * mib);
  assert.ok((stats.memoryUsageBytes ?? 0) > 0, "memory usage is read");
  assert.ok((stats.cpuUsageNanoseconds ?? 0) > 0, "cpu usage is read");
  assert.ok(stats.pidsCurrent !== null && stats.pidsCurrent >= 2 && stats.pidsCurrent <= 4, `pids ${stats.pidsCurrent} within the limit`);
  // stderr is its own pipe: its line may be logged after stdout's "spawned".
  await waitFor("the failed fork on stderr (forks past the limit fail)", async () => /fork/i.test((await readLogs(engine, id)).stderr));
  await engine.containers.remove(id, { force: true });
  await waitFor("cgroup removal", async () => {
    try {
      await readFile(`/sys/fs/cgroup/memory${cgroup}/memory.limit_in_bytes`);
      return false;
    } catch {
      return true;
    }
  });
});
