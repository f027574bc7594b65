import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, rm, statfs, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

import { ensureRunDirectoryOnTmpfs, releaseRunDirectory } from "../../src/engine/run-directory.js";
import { listMountPoints } from "../../src/engine/runtime/rootfs-mount.js";
import { containerSkipReason, testLogger } from "./runtime/helpers.js";

const options = { skip: containerSkipReason() ?? false };
const tmpfsMagic = 0x01021994;

async function mountsAt(directory: string): Promise<number> {
  return (await listMountPoints()).filter((point) => point === directory).length;
}

async function scratch(t: { after: (fn: () => Promise<void>) => void }): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), "shoal-rundir-"));
  t.after(async () => {
    await releaseRunDirectory(join(root, "engine"));
    await rm(root, { recursive: true, force: true });
  });
  const directory = join(root, "engine");
  await mkdir(directory);
  return directory;
}

test("a run directory on a disk gets one tmpfs, kept across restarts, and release removes it", options, async (t) => {
  const directory = await scratch(t);
  if ((await statfs(directory)).type === tmpfsMagic) {
    t.skip("the temporary directory is a tmpfs already: nothing to mount");
    return;
  }
  await ensureRunDirectoryOnTmpfs(directory, { runtimeRootBase: join(directory, "oci"), logger: testLogger });
  assert.equal((await statfs(directory)).type, tmpfsMagic);
  await writeFile(join(directory, "state"), "kept");
  // A daemon restart finds its tmpfs and its files: no second mount on top.
  await ensureRunDirectoryOnTmpfs(directory, { runtimeRootBase: join(directory, "oci"), logger: testLogger });
  assert.equal(await mountsAt(directory), 1);
  assert.equal(await readFile(join(directory, "state"), "utf8"), "kept");
  await releaseRunDirectory(directory);
  assert.equal(await mountsAt(directory), 0);
  await releaseRunDirectory(directory);
});

test("a run directory on a disk holding containers' runtime state is left on the disk", options, async (t) => {
  const directory = await scratch(t);
  await mkdir(join(directory, "oci", "runc", "a".repeat(64)), { recursive: true });
  await ensureRunDirectoryOnTmpfs(directory, { runtimeRootBase: join(directory, "oci"), logger: testLogger });
  assert.equal(await mountsAt(directory), 0, "no tmpfs hides the running containers' state");
});
