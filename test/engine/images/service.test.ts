import assert from "node:assert/strict";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { gzipSync } from "node:zlib";

import { systemClock } from "../../../src/common/clock.js";
import { AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, NotFoundError } from "../../../src/common/errors.js";
import { buildTar, readTar } from "../../../src/engine/archive/index.js";
import { sha256Digest, type Digest } from "../../../src/engine/content/index.js";
import {
  buildDemoArchive,
  buildDemoImages,
  demoBusyboxName,
  demoLayeredName,
  openImageService,
  type ImageService,
} from "../../../src/engine/images/index.js";
import { containerEtcFiles } from "../../../src/engine/network/index.js";
import { bytesSource, isRoot, rootSkipReason, tempRoot, testLogger } from "../fixtures/engine-root.js";

const skip = isRoot ? false : rootSkipReason;

async function openService(root: string, inUse: Set<string> = new Set()): Promise<ImageService> {
  return openImageService({ root, logger: testLogger(), clock: systemClock, isInUse: (id) => inUse.has(id) });
}

async function saveToBuffer(images: ImageService, references: string[]): Promise<Buffer> {
  const chunks: Buffer[] = [];
  await images.save(references, (chunk) => {
    chunks.push(chunk);
    return Promise.resolve();
  });
  return Buffer.concat(chunks);
}

async function archiveFiles(archive: Buffer): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  for await (const entry of readTar(bytesSource(archive))) {
    if (entry.type !== "file") continue;
    const chunks: Buffer[] = [];
    for await (const chunk of entry.body()) chunks.push(chunk);
    files.set(entry.path, Buffer.concat(chunks));
  }
  return files;
}

test("the demo images load with names, parsed configs and shared base layer", { skip }, async (t) => {
  const root = await tempRoot(t);
  const images = await openService(root);
  const { busybox, layered } = await buildDemoImages(images);
  assert.deepEqual(busybox.names, [`docker.io/${demoBusyboxName}`]);
  assert.deepEqual(busybox.config.env, ["PATH=/bin"]);
  assert.deepEqual(busybox.config.cmd, ["sh"]);
  assert.equal(layered.diffIds.length, 3);
  assert.equal(layered.diffIds[0], busybox.diffIds[0], "both images share the busybox layer");
  assert.equal(layered.chainIds[0], busybox.chainIds[0]);
  assert.equal(images.inspect(busybox.id.slice("sha256:".length, 19)).digest, busybox.digest, "short ids resolve");
  assert.equal(images.inspect("shoal-demo/busybox").digest, busybox.digest, "the default tag is latest");
  const again = await buildDemoArchive();
  assert.equal(sha256Digest(again), sha256Digest(await buildDemoArchive()), "the demo build is reproducible");
});

test("save then load round-trips through the OCI layout and the docker manifest.json", { skip }, async (t) => {
  const root = await tempRoot(t);
  const images = await openService(root);
  const { busybox, layered } = await buildDemoImages(images);
  const archive = await saveToBuffer(images, [demoBusyboxName, demoLayeredName]);
  const files = await archiveFiles(archive);
  assert.ok(files.has("oci-layout") && files.has("index.json") && files.has("manifest.json"));
  const dockerManifest: unknown = JSON.parse(files.get("manifest.json")?.toString() ?? "null");
  assert.ok(Array.isArray(dockerManifest) && dockerManifest.length === 2);
  assert.deepEqual((dockerManifest[0] as { RepoTags: string[] }).RepoTags, [demoBusyboxName]);

  const otherRoot = await tempRoot(t);
  const other = await openService(otherRoot);
  const loaded = await other.load(bytesSource(archive));
  assert.deepEqual(loaded.map((image) => image.digest).sort(), [busybox.digest, layered.digest].sort(), "manifest digests survive");
  assert.equal(other.inspect(demoLayeredName).id, layered.id);
});

test("a pre-OCI docker save archive (config.json, layer.tar, symlinked layer) loads", { skip }, async (t) => {
  const root = await tempRoot(t);
  const images = await openService(root);
  const layer = await buildTar([{ entry: { path: "hello.txt", type: "file", size: 3 }, body: Buffer.from("hi\n") }]);
  const diffId = sha256Digest(layer);
  const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", config: { Cmd: ["cat", "/hello.txt"] }, rootfs: { type: "layers", diff_ids: [diffId, diffId] } }));
  const configName = `${sha256Digest(config).slice(7)}.json`;
  const manifest = Buffer.from(JSON.stringify([{ Config: configName, RepoTags: ["legacy/app:v1"], Layers: ["aaa/layer.tar", "bbb/layer.tar"] }]));
  const archive = await buildTar([
    { entry: { path: configName, type: "file", size: config.length }, body: config },
    { entry: { path: "aaa/layer.tar", type: "file", size: layer.length }, body: layer },
    { entry: { path: "bbb/layer.tar", type: "symlink", linkpath: "../aaa/layer.tar" } },
    { entry: { path: "manifest.json", type: "file", size: manifest.length }, body: manifest },
  ]);
  const [loaded] = await images.load(bytesSource(archive));
  assert.ok(loaded !== undefined);
  assert.deepEqual(loaded.names, ["docker.io/legacy/app:v1"]);
  assert.deepEqual(loaded.config.cmd, ["cat", "/hello.txt"]);
  assert.equal(loaded.id, sha256Digest(config));
  assert.equal(loaded.layers[0]?.mediaType, "application/vnd.oci.image.layer.v1.tar");

  const resaved = await saveToBuffer(images, ["legacy/app:v1"]);
  const fresh = await openService(await tempRoot(t));
  const [again] = await fresh.load(bytesSource(resaved));
  assert.equal(again?.id, loaded.id);
});

test("load refuses a layer whose content does not match the config's diff id, naming nothing", { skip }, async (t) => {
  const root = await tempRoot(t);
  const images = await openService(root);
  const layer = gzipSync(await buildTar([{ entry: { path: "a", type: "file", size: 1 }, body: Buffer.from("a") }]));
  const wrongDiffId: Digest = sha256Digest("not the layer");
  const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [wrongDiffId] } }));
  const manifest = Buffer.from(JSON.stringify([{ Config: "c.json", RepoTags: ["bad/image:1"], Layers: ["l/layer.tar"] }]));
  const archive = await buildTar([
    { entry: { path: "c.json", type: "file", size: config.length }, body: config },
    { entry: { path: "l/layer.tar", type: "file", size: layer.length }, body: layer },
    { entry: { path: "manifest.json", type: "file", size: manifest.length }, body: manifest },
  ]);
  await assert.rejects(images.load(bytesSource(archive)), /diff id/u);
  assert.throws(() => images.inspect("bad/image:1"), NotFoundError);
  const leftovers = (await readdir(join(root, "snapshots"))).filter((name) => name !== "metadata.json" && name !== "metadata.json.tmp");
  assert.deepEqual(leftovers, [], "the failed extraction left no snapshot directory");
});

test("remove is refused while a container uses the image, untags names, and deletes unreferenced blobs", { skip }, async (t) => {
  const root = await tempRoot(t);
  const inUse = new Set<string>();
  const images = await openService(root, inUse);
  const { busybox, layered } = await buildDemoImages(images);
  await images.tag(demoBusyboxName, "example.com/team/tool:2");
  assert.throws(() => images.inspect("example.com/team/tool:3"), NotFoundError);
  await assert.rejects(images.remove(busybox.id), FailedPreconditionError, "an id with several names needs force");
  const untag = await images.remove("example.com/team/tool:2");
  assert.deepEqual(untag.deleted, []);

  inUse.add(layered.id);
  await assert.rejects(images.remove(demoLayeredName), FailedPreconditionError);
  assert.equal(images.inspect(demoLayeredName).id, layered.id, "a refused removal changes nothing");

  const blobsBefore = await readdir(join(root, "content", "blobs", "sha256"));
  const removed = await images.remove(demoLayeredName, { force: true });
  assert.ok(removed.deleted.includes(layered.id));
  const blobsAfter = await readdir(join(root, "content", "blobs", "sha256"));
  assert.ok(blobsAfter.length < blobsBefore.length, "the layered image's own blobs are gone");
  for (const layer of busybox.layers) assert.ok(blobsAfter.includes(layer.digest.slice(7)), "the shared layer stays");
  assert.throws(() => images.inspect(demoLayeredName), NotFoundError);
});

test("containers of one image stand on one init layer, made once, collected with the image", { skip }, async (t) => {
  const root = await tempRoot(t);
  const images = await openImageService({ root, logger: testLogger(), clock: systemClock, initLayerFiles: containerEtcFiles });
  await buildDemoImages(images);
  const lowerOf = (mounts: readonly { options: readonly string[] }[]): string[] =>
    mounts[0]?.options.find((option) => option.startsWith("lowerdir="))?.slice("lowerdir=".length).split(":") ?? [];
  const [first, second] = await Promise.all(
    ["c1", "c2"].map(async (containerId) => await images.prepareContainerRootfs({ containerId, imageRef: demoLayeredName })),
  );
  const init = lowerOf(first ?? [])[0] ?? "";
  assert.equal(lowerOf(second ?? [])[0], init, "both containers' topmost lower layer is the same init layer");
  assert.deepEqual((await readdir(join(init, "etc"))).sort(), ["hostname", "hosts", "resolv.conf"]);
  const snapshotDirectories = async (): Promise<string[]> => (await readdir(join(root, "snapshots"))).filter((name) => /^\d+$/.test(name));
  const withContainers = await snapshotDirectories();

  await images.removeContainerRootfs("c1");
  await images.removeContainerRootfs("c2");
  await images.remove(demoLayeredName, { force: true });
  const left = await snapshotDirectories();
  assert.equal(left.length, withContainers.length - 2 - 1 - 2, "the containers' layers, the init layer and the image's own two layers are gone");
  assert.equal(left.includes(init.split("/").at(-2) ?? ""), false, "the init layer is collected");
});

test("image metadata survives reopening the store", { skip }, async (t) => {
  const root = await tempRoot(t);
  const { busybox } = await buildDemoImages(await openService(root));
  const reopened = await openService(root);
  const found = reopened.inspect(demoBusyboxName);
  assert.equal(found.digest, busybox.digest);
  assert.deepEqual(found.chainIds, busybox.chainIds);
  const mounts = await reopened.prepareContainerRootfs({ containerId: "c1", imageRef: demoBusyboxName });
  assert.equal(mounts[0]?.type, "overlay");
  assert.equal(mounts[0]?.options.filter((option) => option.startsWith("lowerdir=")).length, 1);
  assert.ok(mounts[0]?.options.some((option) => option.startsWith("upperdir=")));
  const afterRestart = await openService(root);
  assert.deepEqual(afterRestart.containerRootfsMounts("c1"), mounts, "a restarted engine finds the container's layer");
  await assert.rejects(afterRestart.prepareContainerRootfs({ containerId: "c1", imageRef: demoBusyboxName }), AlreadyExistsError);
  await assert.rejects(afterRestart.prepareContainerRootfs({ containerId: "../escape", imageRef: demoBusyboxName }), InvalidArgumentError);
});

test("an OCI layout whose index points at a multi-platform index loads the host platform", { skip }, async (t) => {
  const images = await openImageService({ root: await tempRoot(t), logger: testLogger(), clock: systemClock, platform: { os: "linux", architecture: "amd64" } });
  const blobs: Buffer[] = [];
  const add = (bytes: Buffer): { digest: Digest; size: number } => {
    blobs.push(bytes);
    return { digest: sha256Digest(bytes), size: bytes.length };
  };
  const platformManifests = [];
  for (const architecture of ["arm64", "amd64"]) {
    const layer = await buildTar([{ entry: { path: "arch", type: "file", size: architecture.length }, body: Buffer.from(architecture) }]);
    const config = add(Buffer.from(JSON.stringify({ architecture, os: "linux", rootfs: { type: "layers", diff_ids: [sha256Digest(layer)] } })));
    const manifest = add(
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
          layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", ...add(layer) }],
        }),
      ),
    );
    platformManifests.push({ mediaType: "application/vnd.oci.image.manifest.v1+json", ...manifest, platform: { os: "linux", architecture } });
  }
  const inner = add(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests: platformManifests })));
  const index = { schemaVersion: 2, manifests: [{ mediaType: "application/vnd.oci.image.index.v1+json", ...inner, annotations: { "io.containerd.image.name": "example.com/multi:2" } }] };
  const entries = [
    ...blobs.map((body) => ({ entry: { path: `blobs/sha256/${sha256Digest(body).slice(7)}`, type: "file" as const, size: body.length }, body })),
    { entry: { path: "oci-layout", type: "file" as const, size: 30 }, body: Buffer.from('{"imageLayoutVersion":"1.0.0"}') },
    { entry: { path: "index.json", type: "file" as const, size: Buffer.byteLength(JSON.stringify(index)) }, body: Buffer.from(JSON.stringify(index)) },
  ];
  const [loaded] = await images.load(bytesSource(await buildTar(entries)));
  assert.equal(loaded?.platform.architecture, "amd64");
  assert.equal(loaded?.digest, platformManifests[1]?.digest);
  assert.deepEqual(loaded?.names, ["example.com/multi:2"]);
});
