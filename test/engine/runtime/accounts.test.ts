import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

import { ContainerAccountFiles } from "../../../src/engine/runtime/accounts.js";
import { listMountPoints } from "../../../src/engine/runtime/rootfs-mount.js";
import { containerSkipReason } from "./helpers.js";

const options = { skip: containerSkipReason() ?? false };

async function mountPointsUnder(directory: string): Promise<string[]> {
  return (await listMountPoints()).filter((point) => point.startsWith(directory));
}

test("account files are read once per image for containers without their own /etc, and the mount never stays", options, async (t) => {
  const root = await mkdtemp(join(tmpdir(), "shoal-accounts-"));
  t.after(() => rm(root, { recursive: true, force: true }));
  const image = join(root, "image");
  await mkdir(join(image, "etc"), { recursive: true });
  await writeFile(join(image, "etc", "passwd"), "root:x:0:0::/root:/bin/sh\n");
  const writable = join(root, "writable");
  await mkdir(writable);
  const accounts = new ContainerAccountFiles();
  const request = (container: string, writableLayer: string | null) => ({
    imageId: "sha256:image",
    rootfsPath: join(root, container),
    mounts: [{ type: "bind", source: image, options: ["rbind", "ro"] }],
    writableLayer,
  });
  await Promise.all(["c1", "c2", "c3"].map((container) => mkdir(join(root, container))));

  const read = await Promise.all(["c1", "c2", "c3"].map(async (container) => await accounts.read(request(container, writable))));
  assert.equal(read[0]?.passwd, "root:x:0:0::/root:/bin/sh\n");
  assert.ok(read.every((files) => files === read[0]), "concurrent starts of one image share one read");
  assert.equal(await accounts.read(request("c1", writable)), read[0], "later starts use it too");
  assert.deepEqual(await mountPointsUnder(root), [], "no mount is left");

  // A container that wrote its own /etc is read on its own.
  await mkdir(join(writable, "etc"));
  const own = await accounts.read(request("c2", writable));
  assert.notEqual(own, read[0]);
  assert.equal(own.passwd, "root:x:0:0::/root:/bin/sh\n");
  assert.notEqual(await accounts.read(request("c3", null)), read[0], "a provider that cannot tell reads every time");
  assert.deepEqual(await mountPointsUnder(root), []);
});
