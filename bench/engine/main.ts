// Engine benchmark: start latency of `/bin/busybox true` in a busybox container, image
// present, no network. shoal (create+start+wait+rm through the Engine API, in process, on
// the demo busybox image's overlay snapshot) vs
// raw `runc run` on a prepared bundle (same confinement as shoal's spec, and runc's own
// default spec as the peers' baseline used) vs `docker run --rm --network none` when a
// Docker engine answers. Single starts (median) and batches of 50, sequential and with
// 8 at a time (wall time), and where shoal's single starts spend their time (create,
// start, wait, rm). Usage: npm run bench -- engine [--quick] [--json]
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";

import { pino } from "pino";

import { routeCommandsThrough } from "../../src/common/command.js";
import { CommandSpawner } from "../../src/common/spawner.js";
import { createEngine, engineCgroupParent, releaseEngineRunDirectory, type Engine } from "../../src/engine/engine.js";
import { removeCgroupDirectories } from "../../src/engine/runtime/oci/cgroups.js";
import { buildOciSpec } from "../../src/engine/runtime/spec/spec.js";
import { buildDemoImages, demoBusyboxName } from "../../src/engine/images/index.js";
import { buildBusyboxRootfs } from "./fixtures.js";

const { values: flags } = parseArgs({ options: { quick: { type: "boolean" }, json: { type: "boolean" } } });
const plan = flags.quick === true ? { single: 10, batch: 50, repeats: 1, warmup: 2 } : { single: 30, batch: 50, repeats: 3, warmup: 3 };
const concurrency = 8;

type Runner = (tag: string) => Promise<void>;

interface KindFigures {
  singleMs: number[];
  sequentialMs: number[];
  concurrentMs: number[];
}

function median(values: readonly number[]): number | null {
  const sorted = [...values].sort((left, right) => left - right);
  if (sorted.length === 0) return null;
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[middle] ?? null) : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
}

function runProcess(file: string, args: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`${file} ${args.join(" ")} exited ${code}: ${stderr}`))));
  });
}

async function timeBatch(run: Runner, tag: string, parallel: number): Promise<number> {
  const started = performance.now();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < plan.batch) {
      const index = next;
      next += 1;
      await run(`${tag}-${index}`);
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  return performance.now() - started;
}

/**
 * Times every kind round-robin (one start of each per round, then one batch of each per
 * repeat) so that load from other processes falls on all kinds alike.
 */
async function measure(kinds: readonly { label: string; run: Runner }[]): Promise<Map<string, KindFigures>> {
  const figures = new Map<string, KindFigures>(kinds.map((kind) => [kind.label, { singleMs: [], sequentialMs: [], concurrentMs: [] }]));
  for (const kind of kinds) for (let index = 0; index < plan.warmup; index += 1) await kind.run(`${kind.label}-w${index}`);
  for (let index = 0; index < plan.single; index += 1) {
    for (const kind of kinds) {
      const started = performance.now();
      await kind.run(`${kind.label}-s${index}`);
      figures.get(kind.label)?.singleMs.push(performance.now() - started);
    }
  }
  for (let repeat = 0; repeat < plan.repeats; repeat += 1) {
    for (const kind of kinds) {
      figures.get(kind.label)?.sequentialMs.push(await timeBatch(kind.run, `${kind.label}-q${repeat}`, 1));
      figures.get(kind.label)?.concurrentMs.push(await timeBatch(kind.run, `${kind.label}-p${repeat}`, concurrency));
    }
  }
  return figures;
}

/** Where a shoal start's time goes: create, start (mount, spec, conmon + runc run), wait (exit, runc delete, unmount), rm. */
interface ShoalPhases {
  create: number[];
  start: number[];
  wait: number[];
  rm: number[];
}

function reportPhases(phases: ShoalPhases): Record<string, number | null> {
  const names = ["create", "start", "wait", "rm"] as const;
  const entries = names.map((phase) => [phase, median(phases[phase])] as const);
  console.log(`shoal phases (single starts, medians): ${entries.map(([phase, value]) => `${phase} ${value === null ? "n/a" : value.toFixed(1)} ms`).join(", ")}`);
  return Object.fromEntries(entries.map(([phase, value]) => [`shoal.phase.${phase}_ms`, value]));
}

async function writeRawBundle(directory: string, rootfs: string, shoalSpec: boolean): Promise<void> {
  await mkdir(directory, { recursive: true });
  if (shoalSpec) {
    const spec = buildOciSpec({
      hostname: "bench",
      rootfsPath: rootfs,
      rootfsMounts: [],
      readonlyRootfs: false,
      args: ["/bin/busybox", "true"],
      env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
      cwd: "/",
      user: { uid: 0, gid: 0 },
      networkNamespace: { kind: "new" },
      extraMounts: [],
      resources: { nofile: 1024 },
      cgroupsPath: "/shoal-bench-raw/RAWID",
    });
    await writeFile(join(directory, "config.json"), JSON.stringify(spec));
    return;
  }
  const generated = spawnSync("runc", ["spec"], { cwd: directory });
  if (generated.status !== 0) throw new Error(`runc spec failed: ${generated.stderr.toString()}`);
  const { readFile } = await import("node:fs/promises");
  const parsed: unknown = JSON.parse(await readFile(join(directory, "config.json"), "utf8"));
  if (typeof parsed !== "object" || parsed === null || !("process" in parsed) || !("root" in parsed)) throw new Error("odd runc spec");
  const text = JSON.stringify(parsed)
    .replace('"terminal":true', '"terminal":false')
    .replace('"args":["sh"]', '"args":["/bin/busybox","true"]')
    .replace('"path":"rootfs"', `"path":${JSON.stringify(rootfs)}`);
  await writeFile(join(directory, "config.json"), text);
}

function dockerAnswers(): boolean {
  if (!existsSync("/usr/local/bin/docker") && !existsSync("/usr/bin/docker")) return false;
  const probe = spawnSync("docker", ["version", "--format", "{{.Server.Version}}"], { timeout: 5000 });
  return probe.status === 0;
}

function report(label: string, figures: KindFigures | null, baseline: KindFigures | null): Record<string, number | null> {
  if (figures === null) return {};
  const single = median(figures.singleMs);
  const sequential = median(figures.sequentialMs);
  const parallel = median(figures.concurrentMs);
  const ratio = baseline === null || single === null ? null : single / (median(baseline.singleMs) ?? Number.NaN);
  const fixed = (value: number | null): string => (value === null ? "n/a" : value.toFixed(1));
  console.log(
    `${label.padEnd(22)} single median ${fixed(single)} ms (min ${fixed(Math.min(...figures.singleMs))}, max ${fixed(Math.max(...figures.singleMs))})` +
      `  ${plan.batch} sequential ${fixed(sequential)} ms  ${plan.batch} concurrent(P${concurrency}) ${fixed(parallel)} ms` +
      (ratio === null ? "" : `  ratio to raw runc ${ratio.toFixed(2)}x`),
  );
  return {
    [`${label}.single.median_ms`]: single,
    [`${label}.batch${plan.batch}.sequential_ms`]: sequential,
    [`${label}.batch${plan.batch}.concurrent_p${concurrency}_ms`]: parallel,
    ...(ratio === null ? {} : { [`${label}.ratio_to_runc`]: ratio }),
  };
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) {
    console.log("engine bench needs root (runc, mount): skipped");
    if (flags.json === true) console.log(JSON.stringify({ skipped: "needs root" }));
    return;
  }
  const root = await mkdtemp(join(tmpdir(), "shoal-bench-engine-"));
  const rootfs = join(root, "busybox");
  await buildBusyboxRootfs(rootfs);
  let engine: Engine | null = null;
  const runcRoot = join(root, "runc-root");
  // As in shoald: the engine's helper programs are forked by a spawner process.
  const spawner = new CommandSpawner({ logger: pino({ level: "warn" }) });
  const stopRouting = routeCommandsThrough(spawner);
  try {
    engine = await createEngine({
      dataDir: join(root, "data"),
      runDir: join(root, "run"),
      logger: pino({ level: "warn" }),
      runtime: "auto",
      network: { bridgeName: `shoalb${randomBytes(3).toString("hex")}`, subnet: "10.199.77.0/24" },
    });
    // "Image present": the demo busybox image is loaded and unpacked before timing.
    await buildDemoImages(engine.images);
    const info = engine.info();
    console.log(`shoal engine: ${info.runtime.name} ${info.runtime.version} under conmon; ${info.warnings.length} runtime warning(s)`);
    const activeEngine = engine;
    const shoalPhases: ShoalPhases = { create: [], start: [], wait: [], rm: [] };
    const shoalRun: Runner = async (tag) => {
      const started = performance.now();
      const { id } = await activeEngine.containers.create({ image: demoBusyboxName, cmd: ["/bin/busybox", "true"], networkMode: "none" });
      const created = performance.now();
      await activeEngine.containers.start(id);
      const running = performance.now();
      const status = await activeEngine.containers.wait(id);
      if (status.exitCode !== 0) throw new Error(`container exited ${status.exitCode}`);
      const exited = performance.now();
      await activeEngine.containers.remove(id);
      // Phases of the single (sequential, one at a time) starts only.
      if (/-s\d+$/.test(tag)) {
        shoalPhases.create.push(created - started);
        shoalPhases.start.push(running - created);
        shoalPhases.wait.push(exited - running);
        shoalPhases.rm.push(performance.now() - exited);
      }
    };
    const rawRunner = async (shoalSpec: boolean, name: string): Promise<Runner> => {
      const bundle = join(root, name);
      await writeRawBundle(bundle, rootfs, shoalSpec);
      return async (tag) => {
        const id = `${tag}-${randomBytes(4).toString("hex")}`;
        if (shoalSpec) {
          // Each container needs its own cgroup path, as shoal gives it.
          const { readFile } = await import("node:fs/promises");
          const own = join(root, `${name}-${id}`);
          await mkdir(own);
          await writeFile(join(own, "config.json"), (await readFile(join(bundle, "config.json"), "utf8")).replace("RAWID", id));
          await runProcess("runc", ["--root", runcRoot, "run", "--bundle", own, id]);
          await rm(own, { recursive: true });
          return;
        }
        await runProcess("runc", ["--root", runcRoot, "run", "--bundle", bundle, id]);
      };
    };
    const kinds = [
      { label: "runc-default-spec", run: await rawRunner(false, "bundle-default-spec") },
      { label: "runc-shoal-spec", run: await rawRunner(true, "bundle-shoal-spec") },
      { label: "shoal", run: shoalRun },
    ];
    const docker = dockerAnswers();
    if (docker) {
      kinds.push({
        label: "docker",
        run: () => runProcess("docker", ["run", "--rm", "--network", "none", process.env.IMAGE ?? "busybox:local", "/bin/busybox", "true"]),
      });
    } else {
      console.log("docker: no Docker engine answers here; skipped (peer baseline in /work/shared/peers/RESULTS.md: 218-266 ms)");
    }
    const measured = await measure(kinds);
    const runcDefault = measured.get("runc-default-spec") ?? null;
    const runcShoalSpec = measured.get("runc-shoal-spec") ?? null;
    const shoal = measured.get("shoal") ?? null;
    const dockerFigures = measured.get("docker") ?? null;
    console.log(`single = median of ${plan.single} starts after ${plan.warmup} warm-ups; batches = median of ${plan.repeats} runs; kinds interleaved`);
    const figures = {
      ...report("runc-default-spec", runcDefault, null),
      ...report("runc-shoal-spec", runcShoalSpec, null),
      ...report("shoal", shoal, runcDefault),
      ...report("shoal-vs-same-spec", shoal, runcShoalSpec),
      ...report("docker", dockerFigures, runcDefault),
    };
    Object.assign(figures, reportPhases(shoalPhases));
    const shoalSingle = shoal === null ? null : median(shoal.singleMs);
    const dockerSingle = dockerFigures === null ? null : median(dockerFigures.singleMs);
    if (shoalSingle !== null && dockerSingle !== null) console.log(`docker / shoal: ${(dockerSingle / shoalSingle).toFixed(2)}x`);
    if (flags.json === true) console.log(JSON.stringify({ ...figures, runtime: info.runtime.name, docker }));
  } finally {
    if (engine !== null) {
      const engineId = engine.info().engineId;
      await engine.close();
      await removeCgroupDirectories(engineCgroupParent(engineId)).catch(() => undefined);
    }
    await removeCgroupDirectories("/shoal-bench-raw").catch(() => undefined);
    await releaseEngineRunDirectory(join(root, "run"));
    await rm(root, { recursive: true, force: true });
    stopRouting();
    await spawner.close();
  }
}

await main();
