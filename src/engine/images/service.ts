import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";

import {
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  throwIfAborted,
} from "../../common/errors.js";
import type { Clock } from "../../common/clock.js";
import type { Logger } from "../../common/logger.js";
import type { Digest, Platform } from "../content/digest.js";
import { openContentStore, type ContentStore } from "../content/store.js";
import { createRegistryClient, type RegistryClient, type RegistryCredentials } from "../registry/client.js";
import { formatReference, parseReference } from "../registry/reference.js";
import type { LayerLimits } from "../snapshots/apply.js";
import { openOverlaySnapshotter, type LayerSnapshotter, type Mount } from "../snapshots/snapshotter.js";
import { loadImageArchive, saveImageArchive } from "./archive.js";
import { pullImage, type PullProgress } from "./pull.js";
import { ImageStore, type ImageRecord } from "./store.js";
import { Unpacker } from "./unpack.js";

const containerKeyPrefix = "container/";
const initKeyPrefix = "init/";
const containerIdPattern = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/u;

export interface ImageServiceOptions {
  /** The engine data directory; content/, images/ and snapshots/ live below it. */
  readonly root: string;
  readonly logger: Logger;
  readonly clock: Clock;
  /** Default platform for pulls and archive indexes; default the host's linux platform. */
  readonly platform?: Platform;
  readonly insecureRegistries?: readonly string[];
  readonly credentials?: (registry: string) => RegistryCredentials | undefined;
  /** Whether a container uses the image (by id); images in use are not removed unless forced. */
  readonly isInUse?: (imageId: Digest) => boolean | Promise<boolean>;
  readonly layerLimits?: Partial<LayerLimits>;
  /**
   * Files (paths under the rootfs) the engine bind-mounts over in every container. The
   * runtime needs a file to mount on, and makes one in the container's writable layer where
   * the image has none: a copy-up of their folder and a new file on disk for each, at every
   * container start, and as many to delete at its removal. An init layer per image holds
   * them instead, empty, between the image and its containers, as Docker's per-container
   * init layer does; the mounts cover them, so an image's own files there are never seen
   * either way. None (the default): containers stand on the image itself.
   */
  readonly initLayerFiles?: readonly string[];
}

export interface RemoveResult {
  readonly untagged: readonly string[];
  readonly deleted: readonly Digest[];
}

export type PushProgress = { type: "blob-pushed"; digest: Digest; size: number; uploaded: boolean } | { type: "done"; digest: Digest };

/**
 * The image side of the engine: pull, push, load, save, list, inspect, tag, remove, and the
 * container root filesystems built from image snapshots.
 */
export interface ImageService {
  /** Pulls `reference` (e.g. "busybox", "127.0.0.1:5000/app:1"); see pullImage for errors. */
  pull(reference: string, options?: { platform?: Platform; signal?: AbortSignal; onProgress?: (event: PullProgress) => void }): Promise<ImageRecord>;
  /** Pushes a named image to the registry its name points at. NotFoundError if unknown. */
  push(reference: string, options?: { signal?: AbortSignal; onProgress?: (event: PushProgress) => void }): Promise<Digest>;
  /** Loads a docker-save or OCI-layout tar; returns the images stored (already unpacked). */
  load(source: AsyncIterable<Uint8Array>, options?: { signal?: AbortSignal }): Promise<ImageRecord[]>;
  /** Writes the images as one archive (OCI layout plus docker-save manifest.json) into `sink`. */
  save(references: readonly string[], sink: (chunk: Buffer) => Promise<void>, options?: { signal?: AbortSignal }): Promise<void>;
  list(): ImageRecord[];
  /** By name, full or short id ("sha256:" optional, 12+ hex digits). NotFoundError if absent. */
  inspect(reference: string): ImageRecord;
  tag(source: string, target: string): Promise<ImageRecord>;
  /**
   * Removes a name, or the whole image when given its id or its last name. Refused with
   * FailedPreconditionError while a container uses it (unless `force`) and when an id names
   * an image with several names (unless `force`). Unreferenced blobs and layers are deleted.
   */
  remove(reference: string, options?: { force?: boolean }): Promise<RemoveResult>;
  /** Unpacks the image if needed and prepares the container's writable layer over it. */
  prepareContainerRootfs(input: { containerId: string; imageRef: string; signal?: AbortSignal }): Promise<Mount[]>;
  /** The mounts of an existing container rootfs (after a daemon restart). */
  containerRootfsMounts(containerId: string): Mount[];
  /** The container's writable layer: the overlay's upper dir. */
  containerWritableLayer(containerId: string): string;
  /** Deletes the container's writable layer; does nothing if it is already gone. */
  removeContainerRootfs(containerId: string): Promise<void>;
}

function hostPlatform(): Platform {
  const architectures: Record<string, string> = { x64: "amd64", arm64: "arm64", arm: "arm", ppc64: "ppc64le", s390x: "s390x", riscv64: "riscv64" };
  return { os: "linux", architecture: architectures[process.arch] ?? process.arch };
}

function containerKey(containerId: string): string {
  if (!containerIdPattern.test(containerId)) throw new InvalidArgumentError(`container id "${containerId}" must be 1-128 letters, digits, "_", "." or "-"`);
  return `${containerKeyPrefix}${containerId}`;
}

class ImageServiceImpl implements ImageService {
  readonly #content: ContentStore;
  readonly #images: ImageStore;
  readonly #snapshotter: LayerSnapshotter;
  readonly #registry: RegistryClient;
  readonly #unpacker: Unpacker;
  readonly #logger: Logger;
  readonly #platform: Platform;
  readonly #isInUse: (imageId: Digest) => boolean | Promise<boolean>;
  #operations = 0;
  #garbagePending = false;
  /** ImageServiceOptions.initLayerFiles. */
  readonly #initLayerFiles: readonly string[];
  /** Init layers being made, by key: concurrent container creates of one image make it once. */
  readonly #initLayers = new Map<string, Promise<string>>();

  constructor(parts: { content: ContentStore; images: ImageStore; snapshotter: LayerSnapshotter; registry: RegistryClient; unpacker: Unpacker; logger: Logger; platform: Platform; isInUse: (imageId: Digest) => boolean | Promise<boolean>; initLayerFiles: readonly string[] }) {
    this.#content = parts.content;
    this.#images = parts.images;
    this.#snapshotter = parts.snapshotter;
    this.#registry = parts.registry;
    this.#unpacker = parts.unpacker;
    this.#logger = parts.logger;
    this.#platform = parts.platform;
    this.#isInUse = parts.isInUse;
    this.#initLayerFiles = parts.initLayerFiles;
  }

  /**
   * Runs an operation that writes blobs or snapshots before an image record refers to them.
   * Garbage collection waits until none is running, so it never deletes their work.
   */
  async #operation<T>(run: () => Promise<T>): Promise<T> {
    this.#operations += 1;
    try {
      return await run();
    } finally {
      this.#operations -= 1;
      if (this.#operations === 0 && this.#garbagePending) {
        this.#garbagePending = false;
        await this.#collectGarbage().catch((error: unknown) => this.#logger.error({ err: error }, "deferred image garbage collection failed"));
      }
    }
  }

  pull(reference: string, options: { platform?: Platform; signal?: AbortSignal; onProgress?: (event: PullProgress) => void } = {}): Promise<ImageRecord> {
    const context = { content: this.#content, images: this.#images, registry: this.#registry, unpacker: this.#unpacker, logger: this.#logger, platform: this.#platform };
    const ref = parseReference(reference);
    return this.#operation(() => pullImage(context, ref, options));
  }

  async push(reference: string, options: { signal?: AbortSignal; onProgress?: (event: PushProgress) => void } = {}): Promise<Digest> {
    const ref = parseReference(reference);
    const name = formatReference(ref);
    const image = this.#images.byName(name) ?? (ref.digest === undefined ? undefined : this.#images.byManifest(ref.digest));
    if (image === undefined) throw new NotFoundError(`no local image is named ${name}; tag an image with that name first`);
    const signal = options.signal === undefined ? {} : { signal: options.signal };
    for (const blob of [image.configDescriptor, ...image.layers]) {
      throwIfAborted(options.signal);
      const { uploaded } = await this.#registry.pushBlob(ref, blob, () => this.#content.open(blob.digest, signal), signal);
      options.onProgress?.({ type: "blob-pushed", digest: blob.digest, size: blob.size, uploaded });
    }
    const bytes = await this.#content.readBlob(image.digest, Number.MAX_SAFE_INTEGER);
    const digest = await this.#registry.putManifest(ref, ref.digest ?? ref.tag ?? "latest", { mediaType: image.mediaType, bytes }, signal);
    options.onProgress?.({ type: "done", digest });
    return digest;
  }

  load(source: AsyncIterable<Uint8Array>, options: { signal?: AbortSignal } = {}): Promise<ImageRecord[]> {
    return this.#operation(() => this.#load(source, options));
  }

  async #load(source: AsyncIterable<Uint8Array>, options: { signal?: AbortSignal }): Promise<ImageRecord[]> {
    const found = await loadImageArchive(this.#content, source, { platform: this.#platform, ...(options.signal === undefined ? {} : { signal: options.signal }) });
    const stored: ImageRecord[] = [];
    for (const { manifest, names } of found) {
      const record = await this.#images.buildRecord(manifest, [], 0);
      // Unpacking verifies every layer against the config's diff ids before the image is named.
      await this.#unpacker.unpack(record, options.signal === undefined ? {} : { signal: options.signal });
      stored.push(await this.#images.put(record, names));
    }
    return stored;
  }

  async save(references: readonly string[], sink: (chunk: Buffer) => Promise<void>, options: { signal?: AbortSignal } = {}): Promise<void> {
    if (references.length === 0) throw new InvalidArgumentError("name at least one image to save");
    const images = references.map((reference) => this.inspect(reference));
    const unique = [...new Map(images.map((image) => [image.digest, image])).values()];
    await saveImageArchive(this.#content, unique, sink, options);
  }

  list(): ImageRecord[] {
    return this.#images.list();
  }

  inspect(reference: string): ImageRecord {
    if (/^(sha256:)?[a-f0-9]{12,64}$/u.test(reference)) {
      const matches = this.#images.byIdPrefix(reference);
      const distinct = new Set(matches.map((image) => image.id));
      if (distinct.size > 1) throw new InvalidArgumentError(`image id prefix ${reference} is ambiguous; give more digits`);
      const [first] = matches;
      if (first !== undefined) return first;
    }
    const ref = parseReference(reference);
    const byName = this.#images.byName(formatReference(ref));
    if (byName !== undefined) return byName;
    if (ref.digest !== undefined) {
      const byDigest = this.#images.byManifest(ref.digest);
      if (byDigest !== undefined) return byDigest;
    }
    throw new NotFoundError(`no such image: ${reference}`);
  }

  async tag(source: string, target: string): Promise<ImageRecord> {
    const image = this.inspect(source);
    const ref = parseReference(target);
    if (ref.digest !== undefined) throw new InvalidArgumentError(`cannot tag with a digest reference "${target}"`);
    return this.#images.put(image, [formatReference(ref)]);
  }

  async remove(reference: string, options: { force?: boolean } = {}): Promise<RemoveResult> {
    const image = this.inspect(reference);
    const force = options.force === true;
    const byName = image.names.find((name) => name === formatReferenceOrUndefined(reference));
    if (byName !== undefined && image.names.length > 1) {
      await this.#images.untag(byName);
      return { untagged: [byName], deleted: [] };
    }
    if (byName === undefined && image.names.length > 1 && !force) {
      throw new FailedPreconditionError(`image ${image.id} has several names (${image.names.join(", ")}); remove them one by one or force`);
    }
    if (!force && (await this.#isInUse(image.id))) {
      throw new FailedPreconditionError(`image ${image.names[0] ?? image.id} is used by a container; remove the container first or force`);
    }
    await this.#images.delete(image.digest);
    if (this.#operations > 0) {
      this.#garbagePending = true;
      return { untagged: image.names, deleted: [image.id] };
    }
    const deleted = await this.#collectGarbage();
    return { untagged: image.names, deleted: [image.id, ...deleted.filter((digest) => digest !== image.id)] };
  }

  /** Deletes blobs and layer snapshots no stored image refers to; returns deleted blob digests. */
  async #collectGarbage(): Promise<Digest[]> {
    const images = this.#images.list();
    const blobs = new Set<Digest>(images.flatMap((image) => [image.digest, image.configDescriptor.digest, ...image.layers.map((layer) => layer.digest)]));
    const chains = new Set<string>(images.flatMap((image) => image.chainIds));
    const deleted: Digest[] = [];
    for (const info of await this.#content.list()) {
      if (blobs.has(info.digest)) continue;
      await this.#content.delete(info.digest);
      deleted.push(info.digest);
    }
    // Children before parents; a layer under a live container stays until the container goes.
    let removed = true;
    while (removed) {
      removed = false;
      for (const info of this.#snapshotter.list()) {
        if (info.kind !== "committed" || chains.has(info.key)) continue;
        if (this.#snapshotter.list().some((other) => other.parent === info.key)) continue;
        await this.#snapshotter.remove(info.key);
        removed = true;
      }
    }
    this.#logger.debug({ blobs: deleted.length }, "image garbage collected");
    return deleted;
  }

  async prepareContainerRootfs(input: { containerId: string; imageRef: string; signal?: AbortSignal }): Promise<Mount[]> {
    const key = containerKey(input.containerId);
    const image = this.inspect(input.imageRef);
    return this.#operation(async () => {
      await this.#unpacker.unpack(image, input.signal === undefined ? {} : { signal: input.signal });
      const top = image.chainIds.at(-1) ?? null;
      return this.#snapshotter.prepare(key, this.#initLayerFiles.length === 0 ? top : await this.#initLayer(top));
    });
  }

  /**
   * The committed init layer over `chainId` (see ImageServiceOptions.initLayerFiles), made
   * when missing. It is garbage like any committed snapshot no image names: collected once
   * no container stands on it. Runs inside an operation, so no collection removes it
   * meanwhile.
   */
  async #initLayer(chainId: string | null): Promise<string> {
    const key = `${initKeyPrefix}${chainId ?? "scratch"}`;
    if (this.#hasSnapshot(key)) return key;
    let making = this.#initLayers.get(key);
    if (making === undefined) {
      making = this.#makeInitLayer(key, chainId).finally(() => this.#initLayers.delete(key));
      this.#initLayers.set(key, making);
    }
    return await making;
  }

  async #makeInitLayer(key: string, chainId: string | null): Promise<string> {
    const active = `${key}/making`;
    // A crash while making it leaves the active snapshot: start over.
    if (this.#hasSnapshot(active)) await this.#snapshotter.remove(active);
    await this.#snapshotter.prepare(active, chainId);
    const directory = this.#snapshotter.activeDirectory(active);
    for (const file of this.#initLayerFiles) {
      await mkdir(join(directory, dirname(file)), { recursive: true, mode: 0o755 });
      await writeFile(join(directory, file), "", { mode: 0o644 });
    }
    await this.#snapshotter.commit(key, active);
    return key;
  }

  containerRootfsMounts(containerId: string): Mount[] {
    return this.#snapshotter.mounts(containerKey(containerId));
  }

  containerWritableLayer(containerId: string): string {
    return this.#snapshotter.activeDirectory(containerKey(containerId));
  }

  async removeContainerRootfs(containerId: string): Promise<void> {
    const key = containerKey(containerId);
    if (this.#hasSnapshot(key)) await this.#snapshotter.remove(key);
  }

  /** One lookup, not a listing of every snapshot: this runs for every container created and removed. */
  #hasSnapshot(key: string): boolean {
    try {
      this.#snapshotter.stat(key);
      return true;
    } catch (error) {
      if (error instanceof NotFoundError) return false;
      throw error;
    }
  }
}

function formatReferenceOrUndefined(reference: string): string | undefined {
  try {
    return formatReference(parseReference(reference));
  } catch (error) {
    if (error instanceof InvalidArgumentError) return undefined;
    throw error;
  }
}

/** Opens the content store, image store and snapshotter under `root` and composes them. */
export async function openImageService(options: ImageServiceOptions): Promise<ImageService> {
  const logger = options.logger.child({ component: "images" });
  const content = await openContentStore({ root: options.root, logger: options.logger });
  const snapshotter = await openOverlaySnapshotter({ root: options.root, clock: options.clock, logger: options.logger });
  const images = new ImageStore({ root: options.root, content, clock: options.clock, logger });
  await images.init();
  const registry = createRegistryClient({
    logger: options.logger,
    clock: options.clock,
    ...(options.insecureRegistries === undefined ? {} : { insecureRegistries: options.insecureRegistries }),
    ...(options.credentials === undefined ? {} : { credentials: options.credentials }),
  });
  const unpacker = new Unpacker({ content, snapshotter, logger, ...(options.layerLimits === undefined ? {} : { limits: options.layerLimits }) });
  await unpacker.cleanup();
  return new ImageServiceImpl({
    content,
    images,
    snapshotter,
    registry,
    unpacker,
    logger,
    platform: options.platform ?? hostPlatform(),
    isInUse: options.isInUse ?? (() => false),
    initLayerFiles: options.initLayerFiles ?? [],
  });
}
