import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { createServer } from "node:net";
import { join } from "node:path";
import type { TestContext } from "node:test";

import { pino } from "pino";

import { NotFoundError } from "../../../src/common/errors.js";
import type { Logger } from "../../../src/common/logger.js";
import { createEngine, engineCgroupParent, releaseEngineRunDirectory, type Engine } from "../../../src/engine/engine.js";
import { removeBridgeNetwork } from "../../../src/engine/network/masquerade.js";
import { removeCgroupDirectories } from "../../../src/engine/runtime/oci/cgroups.js";
import type { ImageRuntimeConfig } from "../../../src/engine/runtime/spec/process.js";
import type { ImageConfigSource, RootfsMount, RootfsProvider } from "../../../src/engine/runtime/types.js";

/** Why real-container tests cannot run here, or null when they can. */
export function containerSkipReason(): string | null {
  if (process.getuid?.() !== 0) return "needs root (runc, mount, netns)";
  for (const tool of ["/usr/bin/conmon", "/usr/sbin/runc", "/bin/busybox"]) {
    if (!existsSync(tool) && !existsSync(tool.replace("/usr/sbin/", "/usr/bin/"))) return `needs ${tool}`;
  }
  return null;
}

export const testLogger: Logger = pino({ level: process.env.SHOAL_TEST_LOG ?? "silent" });

/** A busybox-static root filesystem with applet links and a small passwd/group. */
export async function buildBusyboxRootfs(directory: string): Promise<void> {
  for (const sub of ["bin", "etc", "tmp", "proc", "dev", "sys", "home/app", "srv"]) {
    await mkdir(join(directory, sub), { recursive: true });
  }
  await copyFile("/bin/busybox", join(directory, "bin", "busybox"));
  const applets = execFileSync("/bin/busybox", ["--list"], { encoding: "utf8" }).split("\n").filter((name) => name !== "" && name !== "busybox");
  await Promise.all(applets.map((applet) => symlink("busybox", join(directory, "bin", applet))));
  await writeFile(
    join(directory, "etc", "passwd"),
    "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
  );
  await writeFile(join(directory, "etc", "group"), "root:x:0:\napp:x:1000:\nextra:x:2000:app\nnogroup:x:65534:\n");
}

/** Test-only rootfs provider: every container shares one prepared directory (bind mounted). */
export class DirectoryRootfsProvider implements RootfsProvider {
  readonly prepared = new Set<string>();

  constructor(readonly directory: string) {}

  prepare(containerId: string): Promise<readonly RootfsMount[]> {
    this.prepared.add(containerId);
    return Promise.resolve([{ type: "bind", source: this.directory, options: ["rbind"] }]);
  }

  mounts(): readonly RootfsMount[] {
    return [{ type: "bind", source: this.directory, options: ["rbind"] }];
  }

  /** All containers share the directory, which is also the image: no layer of their own. */
  writableLayer(): null {
    return null;
  }

  remove(containerId: string): Promise<void> {
    this.prepared.delete(containerId);
    return Promise.resolve();
  }
}

export const busyboxConfig: ImageRuntimeConfig = {
  entrypoint: [],
  cmd: ["/bin/sh"],
  env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
  workingDir: "",
  user: "",
  stopSignal: null,
};

export class StaticImages implements ImageConfigSource {
  readonly images = new Map<string, { id: string; config: ImageRuntimeConfig }>();

  get(reference: string): Promise<{ id: string; config: ImageRuntimeConfig }> {
    const image = this.images.get(reference);
    if (image === undefined) return Promise.reject(new NotFoundError(`no such image: ${reference}`));
    return Promise.resolve(image);
  }
}

export interface TestEngineFixture {
  root: string;
  dataDir: string;
  runDir: string;
  rootfsDirectory: string;
  rootfs: DirectoryRootfsProvider;
  images: StaticImages;
  bridgeName: string;
  subnet: string;
  open(): Promise<Engine>;
}

/**
 * A fresh engine on temporary directories with a busybox image "busybox". Everything it
 * creates (containers, bridge, cgroups, directories) is removed after the test.
 */
export async function createEngineFixture(t: TestContext): Promise<TestEngineFixture> {
  const root = await mkdtemp(join(tmpdir(), "shoal-engine-"));
  const rootfsDirectory = join(root, "busybox");
  await buildBusyboxRootfs(rootfsDirectory);
  const images = new StaticImages();
  images.images.set("busybox", { id: `sha256:${"b".repeat(64)}`, config: busyboxConfig });
  const rootfs = new DirectoryRootfsProvider(rootfsDirectory);
  const tag = randomBytes(3).toString("hex");
  const bridgeName = `shoalt${tag}`;
  const subnet = `10.${150 + (randomBytes(1)[0] ?? 0) % 40}.${randomBytes(1)[0] ?? 0}.0/24`;
  const engines: Engine[] = [];
  const fixture: TestEngineFixture = {
    root,
    dataDir: join(root, "data"),
    runDir: join(root, "run"),
    rootfsDirectory,
    rootfs,
    images,
    bridgeName,
    subnet,
    async open() {
      const engine = await createEngine({
        dataDir: fixture.dataDir,
        runDir: fixture.runDir,
        logger: testLogger,
        runtime: "runc",
        network: { bridgeName, subnet },
        rootfs,
        imageConfigs: images,
      });
      engines.push(engine);
      return engine;
    },
  };
  t.after(async () => {
    // Close the test's engines first, then remove what is left with a fresh engine on the
    // same directories (it re-attaches, even when the test failed with its engine closed).
    for (const engine of engines) await engine.close();
    const cleaner = engines.length === 0 ? undefined : await fixture.open().catch(() => undefined);
    const engineId = cleaner?.info().engineId;
    if (cleaner !== undefined) {
      for (const info of cleaner.containers.list({ all: true })) {
        await cleaner.containers.remove(info.record.id, { force: true }).catch(() => undefined);
      }
      await cleaner.close();
    }
    await removeBridgeNetwork(bridgeName);
    if (engineId !== undefined) await removeCgroupDirectories(engineCgroupParent(engineId)).catch(() => undefined);
    await releaseEngineRunDirectory(fixture.runDir);
    await rm(root, { recursive: true, force: true });
  });
  return fixture;
}

/** Collects a container's whole log as { stdout, stderr } strings. */
export async function readLogs(engine: Engine, id: string): Promise<{ stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  for await (const entry of engine.containers.logs(id)) {
    if (entry.stream === "stdout") stdout += entry.text;
    else stderr += entry.text;
  }
  return { stdout, stderr };
}

/** Polls `check` until it returns true or `deadlineMs` passes (then fails with `what`). */
export async function waitFor(what: string, check: () => Promise<boolean> | boolean, deadlineMs = 10_000): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Follows a container's log until a line containing `text` appears. */
export async function waitForLog(engine: Engine, id: string, text: string, deadlineMs = 10_000): Promise<void> {
  const signal = AbortSignal.timeout(deadlineMs);
  for await (const entry of engine.containers.logs(id, { follow: true, signal })) {
    if (entry.text.includes(text)) return;
  }
  throw new Error(`container ${id.slice(0, 12)} never logged "${text}"`);
}

/** A free TCP port on the host, chosen by the kernel. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "0.0.0.0", resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (address === null || typeof address === "string") throw new Error("the kernel gave no port");
  return address.port;
}
