import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { lstat, mkdir, readFile, readdir, readlink, stat, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { gzipSync } from "node:zlib";

import { NotImplementedError } from "../../../src/common/errors.js";
import { buildTar } from "../../../src/engine/archive/index.js";
import { sha256Digest } from "../../../src/engine/content/index.js";
import { applyLayer, confineLayerPath } from "../../../src/engine/snapshots/index.js";
import { bytesSource, isRoot, rootSkipReason, tempRoot, testLogger } from "../fixtures/engine-root.js";
import { maliciousLayers, type HostTarget } from "../fixtures/malicious-layers.js";

const canaryText = "canary: must never change\n";
const canaryMtime = 1_000_000_000;

async function hostSnapshot(target: HostTarget): Promise<string> {
  const names = (await readdir(target.hostDirectory)).sort().join(",");
  const canary = await stat(target.canaryPath);
  return `${names}|${await readFile(target.canaryPath, "utf8")}|${canary.mtimeMs}|${canary.mode}|${canary.nlink}`;
}

for (const layer of maliciousLayers) {
  test(`malicious layer: ${layer.name} (${layer.outcome.kind})`, async (t) => {
    const base = await tempRoot(t, "shoal-corpus-");
    const target: HostTarget = { hostDirectory: join(base, "host"), canaryPath: join(base, "host", "canary.txt") };
    await mkdir(target.hostDirectory);
    await writeFile(target.canaryPath, canaryText);
    await utimes(target.canaryPath, canaryMtime, canaryMtime);
    const root = join(base, "layer");
    await mkdir(root);
    const before = await hostSnapshot(target);
    const blob = await layer.build(target);
    const applying = applyLayer({ root, source: bytesSource(blob), logger: testLogger(), ...(layer.limits === undefined ? {} : { limits: layer.limits }) });
    const outcome = layer.outcome;
    if (outcome.kind === "rejected") {
      await assert.rejects(applying, outcome.message);
    } else {
      await applying;
      for (const expected of outcome.inside) {
        const path = join(root, typeof expected.path === "string" ? expected.path : expected.path(target));
        const found = await lstat(path);
        const type = found.isSymbolicLink() ? "symlink" : found.isDirectory() ? "directory" : "file";
        assert.equal(type, expected.type, `${path} is a ${expected.type}`);
        if (expected.content !== undefined) assert.equal(await readFile(path, "utf8"), expected.content);
      }
      if (isRoot) {
        const xattrs = spawnSync("getfattr", ["-d", "-m", "-", "-R", root], { encoding: "utf8" });
        assert.doesNotMatch(xattrs.stdout, /trusted\.overlay/u, "no overlay xattr comes from layer content");
      }
    }
    assert.equal(await hostSnapshot(target), before, "the host directory and canary are untouched");
  });
}

test("paths are confined: leading slashes dropped, dot components removed, .. refused", () => {
  assert.deepEqual(confineLayerPath("/etc//passwd"), ["etc", "passwd"]);
  assert.deepEqual(confineLayerPath("./a/./b/"), ["a", "b"]);
  assert.deepEqual(confineLayerPath("./"), []);
  assert.throws(() => confineLayerPath("a/../../b"), /escape/u);
});

test("a zstd layer fails with a clear error instead of garbage", async (t) => {
  const root = await tempRoot(t);
  const zstdFrame = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x00, 0x00, 0x00]);
  await assert.rejects(applyLayer({ root, source: bytesSource(zstdFrame), logger: testLogger() }), NotImplementedError);
});

test("a layer whose diff id differs from the expected one is refused", async (t) => {
  const root = await tempRoot(t);
  const layer = await buildTar([{ entry: { path: "a", type: "file", size: 1 }, body: Buffer.from("a") }]);
  await assert.rejects(applyLayer({ root, source: bytesSource(gzipSync(layer)), expectedDiffId: sha256Digest("other"), logger: testLogger() }), /diff id/u);
  const applied = await applyLayer({ root: await tempRoot(t), source: bytesSource(gzipSync(layer)), expectedDiffId: sha256Digest(layer), logger: testLogger() });
  assert.equal(applied.diffId, sha256Digest(layer), "the diff id is the digest of the uncompressed tar");
});

test("ownership, setuid/setgid/sticky modes, mtimes, links, fifos, devices, whiteouts and user xattrs are applied", { skip: isRoot ? false : rootSkipReason }, async (t) => {
  const root = await tempRoot(t);
  const mtime = 1_600_000_000;
  const payload = Buffer.from("#!/bin/sh\n");
  const layer = await buildTar([
    { entry: { path: "usr/bin", type: "directory", mode: 0o755, mtime } },
    { entry: { path: "usr/bin/su", type: "file", mode: 0o4755, uid: 0, gid: 0, size: payload.length, mtime, pax: { "SCHILY.xattr.user.origin": "layer" } }, body: payload },
    { entry: { path: "usr/bin/wall", type: "file", mode: 0o2755, uid: 1234, gid: 5, size: 0, mtime }, body: Buffer.alloc(0) },
    { entry: { path: "tmp", type: "directory", mode: 0o1777, mtime } },
    { entry: { path: "usr/bin/sudo", type: "hardlink", linkpath: "usr/bin/su" } },
    { entry: { path: "usr/bin/link", type: "symlink", linkpath: "/does/not/matter", uid: 7, gid: 8, mtime } },
    { entry: { path: "run/fifo", type: "fifo", mode: 0o600, mtime } },
    { entry: { path: "dev/null", type: "char-device", mode: 0o666, devmajor: 1, devminor: 3, mtime } },
    { entry: { path: "etc/.wh.gone", type: "file", size: 0 }, body: Buffer.alloc(0) },
    { entry: { path: "var/.wh..wh..opq", type: "file", size: 0 }, body: Buffer.alloc(0) },
  ]);
  await applyLayer({ root, source: bytesSource(layer), logger: testLogger() });
  const su = await stat(join(root, "usr/bin/su"));
  assert.equal(su.mode & 0o7777, 0o4755, "setuid survives chown");
  assert.equal(su.mtimeMs, mtime * 1000);
  assert.equal(su.nlink, 2, "the hardlink shares the inode");
  const wall = await stat(join(root, "usr/bin/wall"));
  assert.equal(wall.mode & 0o7777, 0o2755);
  assert.equal(wall.uid, 1234);
  assert.equal(wall.gid, 5);
  assert.equal((await stat(join(root, "tmp"))).mode & 0o7777, 0o1777);
  assert.equal((await stat(join(root, "usr/bin"))).mtimeMs, mtime * 1000, "directory mtimes are set after their children");
  const link = await lstat(join(root, "usr/bin/link"));
  assert.ok(link.isSymbolicLink());
  assert.equal(link.uid, 7);
  assert.equal(await readlink(join(root, "usr/bin/link")), "/does/not/matter");
  assert.ok((await lstat(join(root, "run/fifo"))).isFIFO());
  const device = await lstat(join(root, "dev/null"));
  assert.ok(device.isCharacterDevice());
  assert.equal(device.rdev, (1 << 8) | 3);
  const whiteout = await lstat(join(root, "etc/gone"));
  assert.ok(whiteout.isCharacterDevice() && whiteout.rdev === 0, "a whiteout is a 0/0 char device");
  const opaque = spawnSync("getfattr", ["--only-values", "-n", "trusted.overlay.opaque", join(root, "var")], { encoding: "utf8" });
  assert.equal(opaque.stdout, "y");
  const origin = spawnSync("getfattr", ["--only-values", "-n", "user.origin", join(root, "usr/bin/su")], { encoding: "utf8" });
  assert.equal(origin.stdout, "layer");
});
