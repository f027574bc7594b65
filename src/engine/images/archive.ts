import { posix } from "node:path";

import { InvalidArgumentError, ResourceExhaustedError, throwIfAborted } from "../../common/errors.js";
import { readTar } from "../archive/tar-reader.js";
import { TarWriter } from "../archive/tar-writer.js";
import { digestHex, isDigest, parseDigest, sha256Digest, type Descriptor, type Digest } from "../content/digest.js";
import type { ContentInfo, ContentStore } from "../content/store.js";
import { familiarReference, formatReference, parseReference } from "../registry/reference.js";
import { manifestBytesMax, mediaTypes, parseManifestDocument, selectPlatform, type ImageManifest } from "./manifest.js";
import type { Platform } from "../content/digest.js";
import type { ImageRecord } from "./store.js";

/** Files in an image archive. */
export const archiveEntriesMax = 100_000;
/** Symlink hops when resolving docker-save layer links. */
const archiveLinkHopsMax = 16;
const ociImageNameAnnotation = "io.containerd.image.name";
const ociRefNameAnnotation = "org.opencontainers.image.ref.name";

/** An image found in an archive: its manifest (now in the content store) and its names. */
export interface ArchivedImage {
  readonly manifest: Digest;
  readonly names: readonly string[];
}

interface ArchiveContents {
  blobs: Map<string, ContentInfo>;
  json: Map<string, Buffer>;
  links: Map<string, string>;
}

const jsonFiles = new Set(["manifest.json", "index.json", "oci-layout", "repositories"]);

function normalizeArchivePath(path: string): string {
  const normalized = posix.normalize(`/${path}`).slice(1);
  return normalized.endsWith("/") ? normalized.slice(0, -1) : normalized;
}

async function collect(source: AsyncIterable<Buffer>, bytesMax: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of source) {
    total += chunk.length;
    if (total > bytesMax) throw new ResourceExhaustedError(`${what} is larger than ${bytesMax} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** Streams the archive once: every file becomes a verified blob, the small index files stay in memory. */
async function readArchive(content: ContentStore, source: AsyncIterable<Uint8Array>, signal: AbortSignal | undefined): Promise<ArchiveContents> {
  const contents: ArchiveContents = { blobs: new Map(), json: new Map(), links: new Map() };
  for await (const entry of readTar(source, { headersMax: archiveEntriesMax })) {
    throwIfAborted(signal);
    const path = normalizeArchivePath(entry.path);
    if (entry.type === "symlink" || entry.type === "hardlink") {
      const target = entry.type === "symlink" ? posix.join(posix.dirname(path), entry.linkpath) : entry.linkpath;
      contents.links.set(path, normalizeArchivePath(target));
      continue;
    }
    if (entry.type !== "file") continue;
    if (jsonFiles.has(path)) {
      contents.json.set(path, await collect(entry.body(), manifestBytesMax, path));
      continue;
    }
    const blobMatch = /^blobs\/sha256\/([a-f0-9]{64})$/u.exec(path);
    if (blobMatch !== null) {
      const digest = parseDigest(`sha256:${blobMatch[1] ?? ""}`);
      await content.ensure({ digest, size: entry.size }, () => Promise.resolve(entry.body()), signal === undefined ? {} : { signal });
      contents.blobs.set(path, { digest, size: entry.size });
    } else {
      contents.blobs.set(path, await content.ingestComputed(entry.body(), signal === undefined ? {} : { signal }));
    }
  }
  return contents;
}

function resolveBlob(contents: ArchiveContents, path: string): ContentInfo {
  let current = normalizeArchivePath(path);
  for (let hop = 0; hop < archiveLinkHopsMax; hop += 1) {
    const blob = contents.blobs.get(current);
    if (blob !== undefined) return blob;
    const next = contents.links.get(current);
    if (next === undefined) break;
    current = next;
  }
  throw new InvalidArgumentError(`archive refers to "${path}", which it does not contain`);
}

function parseJsonFile(contents: ArchiveContents, path: string): unknown {
  const bytes = contents.json.get(path);
  if (bytes === undefined) return undefined;
  try {
    return JSON.parse(bytes.toString("utf8"));
  } catch (error) {
    throw new InvalidArgumentError(`archive file ${path} is not valid JSON`, { cause: error });
  }
}

interface DockerSaveEntry {
  config: string;
  repoTags: string[];
  layers: string[];
}

function parseDockerManifest(value: unknown): DockerSaveEntry[] {
  if (!Array.isArray(value)) throw new InvalidArgumentError("archive manifest.json is not a list");
  return value.map((item: unknown, index) => {
    if (typeof item !== "object" || item === null) throw new InvalidArgumentError(`manifest.json entry ${index} is not an object`);
    const fields: Record<string, unknown> = { ...item };
    const strings = (key: string): string[] => {
      const list = fields[key] ?? [];
      if (!Array.isArray(list) || !list.every((entry): entry is string => typeof entry === "string")) {
        throw new InvalidArgumentError(`manifest.json entry ${index} field ${key} is not a list of strings`);
      }
      return list;
    };
    const config = fields["Config"];
    if (typeof config !== "string") throw new InvalidArgumentError(`manifest.json entry ${index} has no Config`);
    return { config, repoTags: strings("RepoTags"), layers: strings("Layers") };
  });
}

async function isGzip(content: ContentStore, digest: Digest): Promise<boolean> {
  for await (const chunk of await content.open(digest)) return chunk[0] === 0x1f && chunk[1] === 0x8b;
  return false;
}

function fullNames(tags: readonly string[]): string[] {
  return tags.map((tag) => formatReference(parseReference(tag)));
}

/** docker save (pre-OCI): build an OCI manifest over the archive's config and layer files. */
async function importDockerSave(content: ContentStore, contents: ArchiveContents, entries: readonly DockerSaveEntry[]): Promise<ArchivedImage[]> {
  const images: ArchivedImage[] = [];
  for (const entry of entries) {
    const config = resolveBlob(contents, entry.config);
    const layers: Descriptor[] = [];
    for (const path of entry.layers) {
      const blob = resolveBlob(contents, path);
      const mediaType = (await isGzip(content, blob.digest)) ? mediaTypes.ociLayerGzip : mediaTypes.ociLayer;
      layers.push({ mediaType, digest: blob.digest, size: blob.size });
    }
    const manifest = {
      schemaVersion: 2,
      mediaType: mediaTypes.ociManifest,
      config: { mediaType: mediaTypes.ociConfig, digest: config.digest, size: config.size },
      layers,
    };
    const bytes = Buffer.from(JSON.stringify(manifest));
    const digest = sha256Digest(bytes);
    await content.ensure({ digest, size: bytes.length }, () => Promise.resolve([bytes]));
    images.push({ manifest: digest, names: fullNames(entry.repoTags) });
  }
  return images;
}

function annotatedName(descriptor: Descriptor): string | undefined {
  const full = descriptor.annotations?.[ociImageNameAnnotation];
  if (full !== undefined) return formatReference(parseReference(full));
  const refName = descriptor.annotations?.[ociRefNameAnnotation];
  // A bare tag ("latest") names no repository; only a full reference can name the image.
  if (refName === undefined || !/[/:]/u.test(refName)) return undefined;
  return formatReference(parseReference(refName));
}

/** OCI image layout: index.json entries (nested indexes resolved to `platform`). */
async function importOciLayout(content: ContentStore, contents: ArchiveContents, platform: Platform, dockerEntries: readonly DockerSaveEntry[]): Promise<ArchivedImage[]> {
  const index = parseJsonFile(contents, "index.json");
  const manifests = parseManifestDocument(Buffer.from(JSON.stringify(index)));
  if (manifests.kind !== "index") throw new InvalidArgumentError("archive index.json is not an OCI index");
  const byManifest = new Map<Digest, Set<string>>();
  for (const entry of manifests.manifests) {
    let descriptor = entry;
    let document = parseManifestDocument(await content.readBlob(descriptor.digest, manifestBytesMax), descriptor.mediaType);
    if (document.kind === "index") {
      const chosen = selectPlatform(document, platform);
      if (chosen === undefined) continue;
      descriptor = chosen;
      document = parseManifestDocument(await content.readBlob(chosen.digest, manifestBytesMax), chosen.mediaType);
      if (document.kind !== "manifest") throw new InvalidArgumentError(`archive index entry ${chosen.digest} is a nested index`);
    }
    const names = byManifest.get(descriptor.digest) ?? new Set<string>();
    const name = annotatedName(entry);
    if (name !== undefined) names.add(name);
    const manifest: ImageManifest = document;
    for (const saved of dockerEntries) {
      if (isDigest(`sha256:${posix.basename(saved.config)}`) && `sha256:${posix.basename(saved.config)}` === manifest.config.digest) {
        for (const tag of fullNames(saved.repoTags)) names.add(tag);
      }
    }
    byManifest.set(descriptor.digest, names);
  }
  return [...byManifest].map(([manifest, names]) => ({ manifest, names: [...names] }));
}

/**
 * Reads an image archive (docker save, or an OCI image layout, or Docker 25's combination of
 * both) into the content store and returns the images it holds. An OCI index wins when both
 * are present, because it keeps the original manifest digests.
 */
export async function loadImageArchive(
  content: ContentStore,
  source: AsyncIterable<Uint8Array>,
  options: { platform: Platform; signal?: AbortSignal },
): Promise<ArchivedImage[]> {
  const contents = await readArchive(content, source, options.signal);
  const dockerValue = parseJsonFile(contents, "manifest.json");
  const dockerEntries = dockerValue === undefined ? [] : parseDockerManifest(dockerValue);
  if (contents.json.has("index.json") && contents.json.has("oci-layout")) {
    return importOciLayout(content, contents, options.platform, dockerEntries);
  }
  if (dockerValue !== undefined) return importDockerSave(content, contents, dockerEntries);
  throw new InvalidArgumentError("archive is neither a docker save archive (manifest.json) nor an OCI image layout (oci-layout and index.json)");
}

/**
 * Writes images as one archive that is both an OCI image layout (oci-layout, index.json,
 * blobs/sha256/...) and a docker save archive (manifest.json pointing into blobs/), the form
 * Docker 25 writes. Layers are stored as pulled (often gzip); docker load accepts both.
 */
export async function saveImageArchive(content: ContentStore, images: readonly ImageRecord[], sink: (chunk: Buffer) => Promise<void>, options: { signal?: AbortSignal } = {}): Promise<void> {
  const writer = new TarWriter(sink);
  await writer.add({ path: "blobs", type: "directory" });
  await writer.add({ path: "blobs/sha256", type: "directory" });
  const written = new Set<Digest>();
  const writeBlob = async (digest: Digest, size: number): Promise<void> => {
    if (written.has(digest)) return;
    written.add(digest);
    throwIfAborted(options.signal);
    await writer.add({ path: `blobs/sha256/${digestHex(digest)}`, type: "file", size, mode: 0o644 }, await content.open(digest));
  };
  const indexEntries: unknown[] = [];
  const dockerEntries: unknown[] = [];
  for (const image of images) {
    const manifestInfo = await content.info(image.digest);
    if (manifestInfo === null) throw new InvalidArgumentError(`image ${image.id} has lost its manifest blob`);
    await writeBlob(image.digest, manifestInfo.size);
    await writeBlob(image.configDescriptor.digest, image.configDescriptor.size);
    for (const layer of image.layers) await writeBlob(layer.digest, layer.size);
    const descriptor = { mediaType: image.mediaType, digest: image.digest, size: manifestInfo.size };
    for (const name of image.names.length === 0 ? [undefined] : image.names) {
      const ref = name === undefined ? undefined : parseReference(name);
      const annotations = ref === undefined ? undefined : { [ociImageNameAnnotation]: name ?? "", ...(ref.tag === undefined ? {} : { [ociRefNameAnnotation]: ref.tag }) };
      indexEntries.push(annotations === undefined ? descriptor : { ...descriptor, annotations });
    }
    dockerEntries.push({
      Config: `blobs/sha256/${digestHex(image.configDescriptor.digest)}`,
      RepoTags: image.names.map((name) => familiarReference(parseReference(name))).filter((name) => !name.includes("@")),
      Layers: image.layers.map((layer) => `blobs/sha256/${digestHex(layer.digest)}`),
    });
  }
  const files: [string, unknown][] = [
    ["oci-layout", { imageLayoutVersion: "1.0.0" }],
    ["index.json", { schemaVersion: 2, mediaType: mediaTypes.ociIndex, manifests: indexEntries }],
    ["manifest.json", dockerEntries],
  ];
  for (const [path, value] of files) {
    const bytes = Buffer.from(JSON.stringify(value));
    await writer.add({ path, type: "file", size: bytes.length, mode: 0o644 }, bytes);
  }
  await writer.finish();
}

