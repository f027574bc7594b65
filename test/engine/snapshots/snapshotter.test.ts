import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { access, mkdir, readFile, readdir, stat, writeFile } from "node:fs/promises";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import { systemClock } from "../../../src/common/clock.js";
import { AlreadyExistsError, FailedPreconditionError, NotFoundError } from "../../../src/common/errors.js";
import { buildDemoImages, demoLayeredName, openImageService } from "../../../src/engine/images/index.js";
import { containerEtcFiles } from "../../../src/engine/network/index.js";
import { openOverlaySnapshotter, type Mount } from "../../../src/engine/snapshots/index.js";
import { isRoot, rootSkipReason, tempRoot, testLogger } from "../fixtures/engine-root.js";

function upperOf(mount: Mount | undefined): string {
  const option = mount?.options.find((item) => item.startsWith("upperdir="));
  assert.ok(option !== undefined, "overlay mount has an upperdir");
  return option.slice("upperdir=".length);
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

test("prepare, commit, view and remove follow the snapshotter contract", async (t) => {
  const root = await tempRoot(t);
  const snapshotter = await openOverlaySnapshotter({ root, clock: systemClock, logger: testLogger() });
  const [base] = await snapshotter.prepare("active-1", null);
  assert.equal(base?.type, "bind", "a snapshot without parent is a plain writable directory");
  await writeFile(join(snapshotter.activeDirectory("active-1"), "file"), "base");
  await snapshotter.commit("layer-1", "active-1");
  assert.throws(() => snapshotter.stat("active-1"), NotFoundError);
  assert.equal(snapshotter.stat("layer-1").kind, "committed");
  await assert.rejects(snapshotter.prepare("layer-1", null), AlreadyExistsError);
  await assert.rejects(snapshotter.prepare("x", "missing"), NotFoundError);

  const [child] = await snapshotter.prepare("active-2", "layer-1");
  assert.equal(child?.type, "overlay");
  assert.ok(child?.options.some((option) => option.startsWith("lowerdir=") && option.includes(join(root, "snapshots"))));
  await assert.rejects(snapshotter.prepare("x", "active-2"), FailedPreconditionError, "an active snapshot cannot be a parent");
  const [view] = await snapshotter.view("view-1", "layer-1");
  assert.deepEqual(view?.options, ["ro", "rbind"]);
  assert.equal(await readFile(join(view?.source ?? "", "file"), "utf8"), "base");

  await assert.rejects(snapshotter.remove("layer-1"), FailedPreconditionError, "children keep their parent");
  const usage = await snapshotter.usage("layer-1");
  assert.ok(usage.inodes >= 2 && usage.size > 0);

  const reopened = await openOverlaySnapshotter({ root, clock: systemClock, logger: testLogger() });
  assert.deepEqual(reopened.list().map((info) => info.key).sort(), ["active-2", "layer-1", "view-1"]);
  assert.deepEqual(reopened.mounts("active-2"), snapshotter.mounts("active-2"), "metadata survives a restart");
  await snapshotter.remove("active-2");
  await snapshotter.remove("view-1");
  await snapshotter.remove("layer-1");
  assert.deepEqual((await readdir(join(root, "snapshots"))).filter((name) => !name.startsWith("metadata")), []);
});

/** Bytes this process has handed to write(2) so far, all threads (libuv's pool does the file writes). */
function bytesWritten(): number | null {
  try {
    const match = /^wchar: (\d+)$/m.exec(readFileSync("/proc/self/io", "utf8"));
    return match?.[1] === undefined ? null : Number(match[1]);
  } catch {
    return null;
  }
}

test("snapshots created together share metadata writes, and each is stored when its call returns", async (t) => {
  const root = await tempRoot(t);
  const snapshotter = await openOverlaySnapshotter({ root, clock: systemClock, logger: testLogger() });
  await snapshotter.prepare("base-active", null);
  await snapshotter.commit("base", "base-active");
  const count = 60;
  const keys = Array.from({ length: count }, (_, index) => `container-${index}`);
  const before = bytesWritten();
  await Promise.all(keys.map((key) => snapshotter.prepare(key, "base")));
  const after = bytesWritten();
  const reopened = await openOverlaySnapshotter({ root, clock: systemClock, logger: testLogger() });
  assert.deepEqual(reopened.list().map((info) => info.key).sort(), ["base", ...keys].sort(), "every prepare reached the file");
  if (before === null || after === null) {
    t.diagnostic("no /proc/self/io here: the amount written is not checked");
  } else {
    // A rewrite of the whole file per prepare would write about count/2 times its final
    // size; shared writes, a few times.
    const fileBytes = (await stat(join(root, "snapshots", "metadata.json"))).size;
    assert.ok(after - before < (count / 6) * fileBytes, `${after - before} bytes written for a ${fileBytes}-byte file`);
  }
  await Promise.all(keys.map((key) => snapshotter.remove(key)));
  assert.deepEqual((await openOverlaySnapshotter({ root, clock: systemClock, logger: testLogger() })).list().map((info) => info.key), ["base"]);
});

test("the layered demo image is seen correctly through a real overlay mount", { skip: isRoot ? false : rootSkipReason }, async (t) => {
  const root = await tempRoot(t);
  const images = await openImageService({ root, logger: testLogger(), clock: systemClock, initLayerFiles: containerEtcFiles });
  await buildDemoImages(images);
  const mounts = await images.prepareContainerRootfs({ containerId: "overlay-test", imageRef: demoLayeredName });
  const [mount] = mounts;
  assert.equal(mount?.type, "overlay");
  assert.equal(mount?.source, "overlay");
  const lower = mount?.options.find((option) => option.startsWith("lowerdir="))?.split(":") ?? [];
  assert.equal(lower.length, 4, "the init layer and three image layers under the container layer");
  const target = join(root, "mnt");
  await mkdir(target);
  const mounted = spawnSync("mount", ["-t", "overlay", "overlay", "-o", mount?.options.join(",") ?? "", target], { encoding: "utf8" });
  assert.equal(mounted.status, 0, `mount failed: ${mounted.stderr}`);
  try {
    assert.equal(await readFile(join(target, "demo/replaced.txt"), "utf8"), "replaced\n");
    assert.equal(await readFile(join(target, "demo/kept.txt"), "utf8"), "kept\n");
    assert.equal(await readFile(join(target, "demo/added.txt"), "utf8"), "added\n");
    assert.equal(await exists(join(target, "demo/deleted.txt")), false, "whiteout hides the file");
    assert.equal(await exists(join(target, "demo/deleted-dir")), false, "whiteout hides the directory");
    assert.deepEqual(await readdir(join(target, "demo/opaque")), ["new.txt"], "opaque directory hides the lower contents");
    assert.ok(await exists(join(target, "bin/busybox")));
    for (const file of ["etc/hostname", "etc/hosts", "etc/resolv.conf"]) assert.equal(await readFile(join(target, file), "utf8"), "", `${file}: the init layer's, to mount on`);
    assert.match(await readFile(join(target, "etc/passwd"), "utf8"), /^root:/, "the image's /etc shows through the init layer's");
    await writeFile(join(target, "demo/written.txt"), "container write");
    assert.equal(await readFile(join(upperOf(mount), "demo/written.txt"), "utf8"), "container write", "writes land in the container layer");
  } finally {
    const unmounted = spawnSync("umount", [target], { encoding: "utf8" });
    assert.equal(unmounted.status, 0, `umount failed: ${unmounted.stderr}`);
  }
  await images.removeContainerRootfs("overlay-test");
  await images.removeContainerRootfs("overlay-test");
  assert.equal(await exists(upperOf(mount)), false, "the container layer is deleted");
});
