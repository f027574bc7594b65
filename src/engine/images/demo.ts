import { readFile } from "node:fs/promises";
import { Readable } from "node:stream";
import { gzipSync } from "node:zlib";

import { buildTar, type TarWriteEntry } from "../archive/tar-writer.js";
import { digestHex, sha256Digest, type Digest, type Platform } from "../content/digest.js";
import { mediaTypes } from "./manifest.js";
import type { ImageService } from "./service.js";
import type { ImageRecord } from "./store.js";

export const demoBusyboxName = "shoal-demo/busybox:latest";
export const demoLayeredName = "shoal-demo/layered:latest";
export const demoApplets = ["sh", "ls", "cat", "echo", "sleep", "true", "false", "httpd", "wget", "hostname", "ps", "env", "id", "nc", "ip", "top", "kill"] as const;
/** Fixed so that the demo images, and their digests, are the same on every build. */
const demoMtime = 1_700_000_000;
const demoCreated = "2023-11-14T22:13:20Z";

interface LayerFile {
  entry: TarWriteEntry;
  body?: Buffer;
}

function file(path: string, text: string, mode = 0o644): LayerFile {
  const body = Buffer.from(text);
  return { entry: { path, type: "file", mode, size: body.length, mtime: demoMtime }, body };
}

function directory(path: string, mode = 0o755): LayerFile {
  return { entry: { path, type: "directory", mode, mtime: demoMtime } };
}

function whiteout(path: string): LayerFile {
  return { entry: { path, type: "file", mode: 0o644, size: 0, mtime: demoMtime }, body: Buffer.alloc(0) };
}

interface BuiltLayer {
  blob: Buffer;
  diffId: Digest;
}

async function buildLayer(files: readonly LayerFile[]): Promise<BuiltLayer> {
  const tar = await buildTar(files);
  return { blob: gzipSync(tar), diffId: sha256Digest(tar) };
}

async function busyboxLayer(busyboxPath: string): Promise<BuiltLayer> {
  const busybox = await readFile(busyboxPath);
  const files: LayerFile[] = [
    directory("bin"),
    { entry: { path: "bin/busybox", type: "file", mode: 0o755, size: busybox.length, mtime: demoMtime }, body: busybox },
    ...demoApplets.map((applet): LayerFile => ({ entry: { path: `bin/${applet}`, type: "symlink", linkpath: "busybox", mode: 0o777, mtime: demoMtime } })),
    directory("etc"),
    file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"),
    file("etc/group", "root:x:0:\nnobody:x:65534:\n"),
    directory("root", 0o700),
    directory("tmp", 0o1777),
    directory("proc"),
    directory("sys"),
    directory("dev"),
  ];
  return buildLayer(files);
}

/** The layered demo: layer 2 writes /demo, layer 3 deletes, replaces and makes a directory opaque. */
async function layeredLayers(): Promise<BuiltLayer[]> {
  const second = await buildLayer([
    directory("demo"),
    file("demo/kept.txt", "kept\n"),
    file("demo/replaced.txt", "original\n"),
    file("demo/deleted.txt", "deleted in layer 3\n"),
    directory("demo/deleted-dir"),
    file("demo/deleted-dir/inner.txt", "gone with its directory\n"),
    directory("demo/opaque"),
    file("demo/opaque/old.txt", "hidden by the opaque marker\n"),
  ]);
  const third = await buildLayer([
    directory("demo"),
    file("demo/replaced.txt", "replaced\n"),
    whiteout("demo/.wh.deleted.txt"),
    whiteout("demo/.wh.deleted-dir"),
    directory("demo/opaque"),
    whiteout("demo/opaque/.wh..wh..opq"),
    file("demo/opaque/new.txt", "new\n"),
    file("demo/added.txt", "added\n"),
  ]);
  return [second, third];
}

function hostArchitecture(): string {
  return process.arch === "x64" ? "amd64" : process.arch;
}

interface DemoImage {
  name: string;
  layers: readonly BuiltLayer[];
}

function imageBlobs(image: DemoImage, platform: Platform): { blobs: Buffer[]; manifest: Buffer } {
  const config = Buffer.from(
    JSON.stringify({
      architecture: platform.architecture,
      os: platform.os,
      created: demoCreated,
      config: { Env: ["PATH=/bin"], Cmd: ["sh"], Labels: { "org.opencontainers.image.title": image.name } },
      rootfs: { type: "layers", diff_ids: image.layers.map((layer) => layer.diffId) },
      history: image.layers.map(() => ({ created: demoCreated, created_by: "shoal buildDemoImages" })),
    }),
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: mediaTypes.ociManifest,
      config: { mediaType: mediaTypes.ociConfig, digest: sha256Digest(config), size: config.length },
      layers: image.layers.map((layer) => ({ mediaType: mediaTypes.ociLayerGzip, digest: sha256Digest(layer.blob), size: layer.blob.length })),
    }),
  );
  return { blobs: [config, ...image.layers.map((layer) => layer.blob), manifest], manifest };
}

/**
 * Builds the demo images as one OCI image-layout tar: `shoal-demo/busybox:latest` (busybox
 * from the host plus applet symlinks, Env PATH=/bin, Cmd ["sh"]) and
 * `shoal-demo/layered:latest` (the same base layer plus two layers with whiteouts, a replaced
 * file and an opaque directory). Needs a static busybox at `busyboxPath`.
 */
export async function buildDemoArchive(options: { busyboxPath?: string } = {}): Promise<Buffer> {
  const base = await busyboxLayer(options.busyboxPath ?? "/bin/busybox");
  const platform: Platform = { os: "linux", architecture: hostArchitecture() };
  const images: DemoImage[] = [
    { name: demoBusyboxName, layers: [base] },
    { name: demoLayeredName, layers: [base, ...(await layeredLayers())] },
  ];
  const files: LayerFile[] = [directory("blobs"), directory("blobs/sha256")];
  const seen = new Set<Digest>();
  const index: unknown[] = [];
  for (const image of images) {
    const { blobs, manifest } = imageBlobs(image, platform);
    for (const blob of blobs) {
      const digest = sha256Digest(blob);
      if (seen.has(digest)) continue;
      seen.add(digest);
      files.push({ entry: { path: `blobs/sha256/${digestHex(digest)}`, type: "file", mode: 0o644, size: blob.length, mtime: demoMtime }, body: blob });
    }
    index.push({
      mediaType: mediaTypes.ociManifest,
      digest: sha256Digest(manifest),
      size: manifest.length,
      annotations: { "io.containerd.image.name": `docker.io/${image.name}`, "org.opencontainers.image.ref.name": "latest" },
    });
  }
  files.push(file("oci-layout", JSON.stringify({ imageLayoutVersion: "1.0.0" })));
  files.push(file("index.json", JSON.stringify({ schemaVersion: 2, mediaType: mediaTypes.ociIndex, manifests: index })));
  return buildTar(files);
}

/** Builds the demo images and loads them into `images`; returns [busybox, layered]. */
export async function buildDemoImages(images: ImageService, options: { busyboxPath?: string; signal?: AbortSignal } = {}): Promise<{ busybox: ImageRecord; layered: ImageRecord }> {
  const archive = await buildDemoArchive(options.busyboxPath === undefined ? {} : { busyboxPath: options.busyboxPath });
  await images.load(Readable.from([archive]), options.signal === undefined ? {} : { signal: options.signal });
  return { busybox: images.inspect(demoBusyboxName), layered: images.inspect(demoLayeredName) };
}
