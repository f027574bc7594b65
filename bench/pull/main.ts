// Registry push/pull figures for the image layer, against a real docker-registry on loopback.
// Peer: docker + skopeo (peers/registry.sh); their medians from /work/shared/peers/RESULTS.md
// are printed beside shoal's, and the run says when docker is not installed here to re-measure.
import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";

import { pino } from "pino";

import { systemClock } from "../../src/common/clock.js";
import { buildDemoImages, demoBusyboxName, openImageService, type ImageService } from "../../src/engine/images/index.js";
import { createRegistryClient, parseReference } from "../../src/engine/registry/index.js";

const registryBinary = "/usr/bin/docker-registry";
/** Medians measured with skopeo (push) and docker (pull) before shoal existed (RESULTS.md §4), in ms; they include CLI process start. */
const peerMediansMs: Record<string, number> = {
  "push.cold": 100.0,
  "push.warm": 41.0,
  "pull.cold": 94.3,
  "manifest.get": 1.1,
};

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[middle] ?? 0) : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function startRegistry(directory: string): Promise<{ address: string; stop: () => Promise<void> }> {
  const port = await freePort();
  const config = join(directory, "config.yml");
  await writeFile(
    config,
    `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  cache:\n    blobdescriptor: inmemory\n  filesystem:\n    rootdirectory: ${join(directory, "data")}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:${port}\n`,
  );
  const child = spawn(registryBinary, ["serve", config], { stdio: "ignore" });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const deadline = Date.now() + 15_000;
  for (;;) {
    const up = await fetch(`http://127.0.0.1:${port}/v2/`).then(
      (response) => response.ok,
      () => false,
    );
    if (up) break;
    if (Date.now() > deadline || child.exitCode !== null) throw new Error("docker-registry did not start");
    await systemClock.sleep(25);
  }
  return {
    address: `127.0.0.1:${port}`,
    stop: async () => {
      child.kill("SIGTERM");
      await exited;
    },
  };
}

async function timed(run: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await run();
  return performance.now() - started;
}

async function measure(base: string, runs: number): Promise<Record<string, number[]>> {
  const logger = pino({ level: "silent" });
  const figures: Record<string, number[]> = { "push.cold": [], "push.warm": [], "pull.cold": [], "pull.warm": [], "manifest.get": [] };
  const source: ImageService = await openImageService({ root: join(base, "source"), logger, clock: systemClock });
  await buildDemoImages(source);
  for (let run = 0; run < runs; run += 1) {
    const registryDirectory = await mkdtemp(join(base, "registry-"));
    const registry = await startRegistry(registryDirectory);
    try {
      const reference = `${registry.address}/bench/busybox:${run}`;
      await source.tag(demoBusyboxName, reference);
      figures["push.cold"]?.push(await timed(() => source.push(reference)));
      figures["push.warm"]?.push(await timed(() => source.push(reference)));
      const pullRoot = join(base, `pull-${run}`);
      const puller = await openImageService({ root: pullRoot, logger, clock: systemClock });
      figures["pull.cold"]?.push(await timed(() => puller.pull(reference)));
      figures["pull.warm"]?.push(await timed(() => puller.pull(reference)));
      const client = createRegistryClient({ logger, clock: systemClock });
      const ref = parseReference(reference);
      for (let index = 0; index < 10; index += 1) figures["manifest.get"]?.push(await timed(() => client.getManifest(ref, String(run))));
      await source.remove(reference);
      await rm(pullRoot, { recursive: true, force: true });
    } finally {
      await registry.stop();
      await rm(registryDirectory, { recursive: true, force: true });
    }
  }
  return figures;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { quick: { type: "boolean", default: false }, json: { type: "boolean", default: false } } });
  if (!existsSync(registryBinary)) {
    console.log(`${registryBinary} is not installed: nothing to measure`);
    if (values.json) console.log(JSON.stringify({ skipped: "docker-registry not installed" }));
    return;
  }
  const dockerPresent = spawnSync("docker", ["info"], { stdio: "ignore" }).status === 0;
  const runs = values.quick ? 3 : 9;
  const base = await mkdtemp(join(tmpdir(), "shoal-bench-pull-"));
  try {
    const figures = await measure(base, runs);
    const result: Record<string, number> = { runs };
    console.log(`image push/pull against docker-registry on loopback, shoal-demo/busybox (1 layer, ~1 MB gzip), ${runs} runs`);
    console.log(dockerPresent ? "docker engine present (re-run peers/registry.sh for fresh peer figures)" : "docker engine not installed: peer figures are the RESULTS.md medians");
    for (const [name, samples] of Object.entries(figures)) {
      const value = median(samples);
      result[`${name}.median_ms`] = Number(value.toFixed(2));
      const peer = peerMediansMs[name];
      const ratio = peer === undefined ? "" : `  (peer ${peer} ms, shoal/peer ${(value / peer).toFixed(2)}x)`;
      if (peer !== undefined) result[`${name}.peer_ratio`] = Number((value / peer).toFixed(3));
      console.log(`${name.padEnd(13)} median ${value.toFixed(2).padStart(8)} ms  min ${Math.min(...samples).toFixed(2)}  max ${Math.max(...samples).toFixed(2)}${ratio}`);
    }
    if (values.json) console.log(JSON.stringify(result));
  } finally {
    await rm(base, { recursive: true, force: true });
  }
}

await main();
