import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

import { isMountPoint, listMountPoints, mountRootfs, unmountRootfs } from "../../../src/engine/runtime/rootfs-mount.js";

const rootReason = process.getuid?.() === 0 ? false : "needs root (mount)";

test("isMountPoint finds a mount point with escaped characters, and not its parent, sibling or prefix", { skip: rootReason }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "shoal-mountpoint-"));
  const target = join(dir, "a dir\\with");
  await mkdir(target);
  await mkdir(`${target}x`);
  t.after(async () => {
    await unmountRootfs(target);
    await rm(dir, { recursive: true, force: true });
  });
  assert.equal(await isMountPoint(target), false);
  await mountRootfs([{ type: "tmpfs", source: "tmpfs", options: ["size=1m"] }, { type: "tmpfs", source: "tmpfs", options: ["size=1m"] }], target);
  assert.equal(await isMountPoint(target), true);
  assert.ok((await listMountPoints()).includes(target), "listMountPoints agrees");
  assert.equal(await isMountPoint(dir), false);
  assert.equal(await isMountPoint(`${target}x`), false);
  assert.equal(await isMountPoint(join(dir, "a dir")), false);
  // Two mounts stacked on the target: unmountRootfs takes both off.
  await unmountRootfs(target);
  assert.equal(await isMountPoint(target), false);
});

test("unmountRootfs told a target is mounted unmounts it, and accepts one unmounted behind its back", { skip: rootReason }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "shoal-mountpoint-"));
  t.after(async () => {
    await unmountRootfs(dir);
    await rm(dir, { recursive: true, force: true });
  });
  await mountRootfs([{ type: "tmpfs", source: "tmpfs", options: ["size=1m"] }], dir);
  await unmountRootfs(dir, { mounted: true });
  assert.equal(await isMountPoint(dir), false);
  // The caller's belief is stale: umount fails, and mountinfo says there is nothing to do.
  await unmountRootfs(dir, { mounted: true });
  assert.equal(await isMountPoint(dir), false);
});
