import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";

import { AlreadyExistsError, InvalidArgumentError, NotFoundError, ResourceExhaustedError, systemErrorCode } from "../../common/errors.js";
import { writeFileAtomic } from "../../common/files.js";
import type { Clock } from "../../common/clock.js";
import type { Logger } from "../../common/logger.js";
import { parseDigest, sha256Digest, type Descriptor, type Digest, type Platform } from "../content/digest.js";
import type { ContentStore } from "../content/store.js";
import { configBytesMax, manifestBytesMax, parseImageConfigDocument, parseManifestDocument, type ImageConfig } from "./manifest.js";

/** Images (distinct manifests) in one store. */
export const imagesMax = 10_000;
/** Names (tags) per image. */
export const imageNamesMax = 1_000;
const indexVersion = 1;

/** An image as the engine knows it: names, manifest, parsed config and layer identities. */
export interface ImageRecord {
  /** The config digest, as docker's image id. */
  readonly id: Digest;
  /** Full references, e.g. "docker.io/library/busybox:latest". */
  readonly names: readonly string[];
  /** The manifest digest. */
  readonly digest: Digest;
  readonly mediaType: string;
  readonly platform: Platform;
  readonly config: ImageConfig;
  /** Config descriptor and layer blobs (compressed as stored). */
  readonly configDescriptor: Descriptor;
  readonly layers: readonly Descriptor[];
  /** Uncompressed layer digests, from the config. */
  readonly diffIds: readonly Digest[];
  /** Snapshot names: chain ids of each layer prefix. */
  readonly chainIds: readonly Digest[];
  /** Bytes stored: config plus layer blobs. */
  readonly size: number;
  /** The config's "created" time (RFC 3339), or null. */
  readonly created: string | null;
  /** When this engine stored the image (ms since the epoch). */
  readonly stored: number;
}

/** chainId(L0) = diffId(L0); chainId(Ln) = sha256(chainId(Ln-1) + " " + diffId(Ln)) (OCI image spec). */
export function computeChainIds(diffIds: readonly Digest[]): Digest[] {
  const chain: Digest[] = [];
  for (const diffId of diffIds) {
    const previous = chain.at(-1);
    chain.push(previous === undefined ? diffId : sha256Digest(`${previous} ${diffId}`));
  }
  return chain;
}

interface IndexEntry {
  manifest: Digest;
  names: string[];
  stored: number;
}

function parseIndex(text: string): IndexEntry[] {
  const parsed: unknown = JSON.parse(text);
  if (typeof parsed !== "object" || parsed === null) throw new InvalidArgumentError("image index is not an object");
  const fields: Record<string, unknown> = { ...parsed };
  if (fields["version"] !== indexVersion) throw new InvalidArgumentError(`image index version is not ${indexVersion}`);
  const images = fields["images"];
  if (!Array.isArray(images)) throw new InvalidArgumentError("image index has no images list");
  return images.map((item: unknown, index) => {
    if (typeof item !== "object" || item === null) throw new InvalidArgumentError(`image index entry ${index} is not an object`);
    const entry: Record<string, unknown> = { ...item };
    const names = entry["names"];
    const stored = entry["stored"];
    if (!Array.isArray(names) || !names.every((name): name is string => typeof name === "string")) {
      throw new InvalidArgumentError(`image index entry ${index} has bad names`);
    }
    if (typeof stored !== "number") throw new InvalidArgumentError(`image index entry ${index} has no stored time`);
    return { manifest: parseDigest(entry["manifest"], `image index entry ${index} manifest`), names, stored };
  });
}

/**
 * Image metadata: `<root>/images/index.json` maps manifest digests to names. Everything else
 * (config, layers) is read back from the content store and parsed again on open, so the
 * blobs stay the single source of truth.
 */
export class ImageStore {
  readonly #path: string;
  readonly #content: ContentStore;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #images = new Map<Digest, ImageRecord>();
  #writing: Promise<void> = Promise.resolve();

  constructor(options: { root: string; content: ContentStore; clock: Clock; logger: Logger }) {
    this.#path = join(options.root, "images", "index.json");
    this.#content = options.content;
    this.#clock = options.clock;
    this.#logger = options.logger;
  }

  async init(): Promise<void> {
    await mkdir(join(this.#path, ".."), { recursive: true });
    let entries: IndexEntry[] = [];
    try {
      entries = parseIndex(await readFile(this.#path, "utf8"));
    } catch (error) {
      if (systemErrorCode(error) !== "ENOENT") throw error;
    }
    for (const entry of entries) {
      try {
        this.#images.set(entry.manifest, await this.buildRecord(entry.manifest, entry.names, entry.stored));
      } catch (error) {
        this.#logger.error({ err: error, manifest: entry.manifest }, "image dropped from the index: its blobs are missing or invalid");
      }
    }
  }

  /** Reads and parses manifest and config blobs into a record (which is not stored). */
  async buildRecord(manifestDigest: Digest, names: readonly string[], stored: number): Promise<ImageRecord> {
    const manifestBytes = await this.#content.readBlob(manifestDigest, manifestBytesMax);
    const manifest = parseManifestDocument(manifestBytes);
    if (manifest.kind !== "manifest") throw new InvalidArgumentError(`${manifestDigest} is an index, not an image manifest`);
    const configBytes = await this.#content.readBlob(manifest.config.digest, configBytesMax);
    const document = parseImageConfigDocument(configBytes);
    if (document.diffIds.length !== manifest.layers.length) {
      throw new InvalidArgumentError(`image ${manifestDigest} lists ${manifest.layers.length} layers but its config has ${document.diffIds.length} diff ids`);
    }
    const variant = document.variant;
    return {
      id: manifest.config.digest,
      names: [...names],
      digest: manifestDigest,
      mediaType: manifest.mediaType,
      platform: variant === undefined ? { os: document.os, architecture: document.architecture } : { os: document.os, architecture: document.architecture, variant },
      config: document.config,
      configDescriptor: manifest.config,
      layers: manifest.layers,
      diffIds: document.diffIds,
      chainIds: computeChainIds(document.diffIds),
      size: manifest.config.size + manifest.layers.reduce((sum, layer) => sum + layer.size, 0),
      created: document.created,
      stored,
    };
  }

  #save(): Promise<void> {
    const images = [...this.#images.values()].map((image) => ({ manifest: image.digest, names: image.names, stored: image.stored }));
    const text = JSON.stringify({ version: indexVersion, images });
    const write = (): Promise<void> => writeFileAtomic(this.#path, text);
    const next = this.#writing.then(write, write);
    this.#writing = next;
    return next;
  }

  list(): ImageRecord[] {
    return [...this.#images.values()];
  }

  byManifest(digest: Digest): ImageRecord | undefined {
    return this.#images.get(digest);
  }

  byName(name: string): ImageRecord | undefined {
    return this.list().find((image) => image.names.includes(name));
  }

  /** Images whose id (config digest) starts with `prefix` ("sha256:" optional). */
  byIdPrefix(prefix: string): ImageRecord[] {
    const full = prefix.startsWith("sha256:") ? prefix : `sha256:${prefix}`;
    return this.list().filter((image) => image.id.startsWith(full));
  }

  /**
   * Stores an image (built with buildRecord) and gives it `names`, taking each name away from
   * any other image that had it. Returns the stored record.
   */
  async put(record: ImageRecord, names: readonly string[]): Promise<ImageRecord> {
    const existing = this.#images.get(record.digest);
    if (existing === undefined && this.#images.size >= imagesMax) throw new ResourceExhaustedError(`image store holds ${imagesMax} images; remove some`);
    const merged = [...new Set([...(existing?.names ?? []), ...names])];
    if (merged.length > imageNamesMax) throw new ResourceExhaustedError(`image ${record.id} would have more than ${imageNamesMax} names`);
    for (const [digest, other] of this.#images) {
      if (digest === record.digest) continue;
      const kept = other.names.filter((name) => !names.includes(name));
      if (kept.length !== other.names.length) this.#images.set(digest, { ...other, names: kept });
    }
    const stored: ImageRecord = { ...(existing ?? record), names: merged, stored: existing?.stored ?? this.#clock.now() };
    this.#images.set(record.digest, stored);
    await this.#save();
    return stored;
  }

  /** Removes one name from its image; the image stays, possibly with no names. */
  async untag(name: string): Promise<ImageRecord> {
    const image = this.byName(name);
    if (image === undefined) throw new NotFoundError(`no image is named ${name}`);
    const updated = { ...image, names: image.names.filter((other) => other !== name) };
    this.#images.set(image.digest, updated);
    await this.#save();
    return updated;
  }

  async delete(digest: Digest): Promise<void> {
    if (!this.#images.delete(digest)) throw new NotFoundError(`image manifest ${digest} is not stored`);
    await this.#save();
  }

  async addName(image: ImageRecord, name: string): Promise<ImageRecord> {
    if (image.names.includes(name)) throw new AlreadyExistsError(`image ${image.id} is already named ${name}`);
    return this.put(image, [name]);
  }
}
