import { InvalidArgumentError, NotFoundError, throwIfAborted } from "../../common/errors.js";
import type { Logger } from "../../common/logger.js";
import type { Descriptor, Digest, Platform } from "../content/digest.js";
import type { ContentStore } from "../content/store.js";
import type { RegistryClient } from "../registry/client.js";
import { formatReference, type ImageReference } from "../registry/reference.js";
import {
  checkLayerMediaType,
  configBytesMax,
  formatPlatform,
  manifestBytesMax,
  parseImageConfigDocument,
  parseManifestDocument,
  selectPlatform,
  type ImageManifest,
} from "./manifest.js";
import type { ImageRecord, ImageStore } from "./store.js";
import type { Unpacker } from "./unpack.js";

/** Layer downloads running at once for one pull (docker's default is 3). */
export const layerDownloadsConcurrentMax = 3;

/** Per-layer progress, enough for a `docker pull`-like display. */
export type PullProgress =
  | { type: "resolved"; reference: string; digest: Digest }
  | { type: "layer-exists"; digest: Digest; size: number }
  | { type: "layer-downloading"; digest: Digest; current: number; total: number }
  | { type: "layer-downloaded"; digest: Digest; size: number }
  | { type: "layer-extracting"; digest: Digest }
  | { type: "layer-extracted"; digest: Digest; unpacked: boolean }
  | { type: "done"; image: ImageRecord; transferredBytes: number };

export interface PullOptions {
  readonly platform?: Platform;
  readonly signal?: AbortSignal;
  readonly onProgress?: (event: PullProgress) => void;
}

export interface PullContext {
  readonly content: ContentStore;
  readonly images: ImageStore;
  readonly registry: RegistryClient;
  readonly unpacker: Unpacker;
  readonly logger: Logger;
  readonly platform: Platform;
}

function signalOption(signal: AbortSignal | undefined): { signal?: AbortSignal } {
  return signal === undefined ? {} : { signal };
}

/** A small blob (manifest, config): from the store when present, else fetched and ingested. */
async function ensureSmallBlob(
  context: PullContext,
  ref: ImageReference,
  descriptor: Descriptor,
  bytesMax: number,
  signal: AbortSignal | undefined,
): Promise<{ bytes: Buffer; transferred: number }> {
  if (descriptor.size > bytesMax) throw new InvalidArgumentError(`blob ${descriptor.digest} declares ${descriptor.size} bytes, over the ${bytesMax}-byte limit`);
  const { transferred } = await context.content.ensure(descriptor, (fetchSignal) => context.registry.openBlob(ref, descriptor, signalOption(fetchSignal)), signalOption(signal));
  return { bytes: await context.content.readBlob(descriptor.digest, bytesMax), transferred: transferred ? descriptor.size : 0 };
}

/** The manifest for `reference` (tag or digest): a HEAD first, so a known digest costs no GET. */
async function fetchManifest(context: PullContext, ref: ImageReference, reference: string, signal: AbortSignal | undefined): Promise<{ bytes: Buffer; digest: Digest; mediaType: string; transferred: number }> {
  const head = await context.registry.headManifest(ref, reference, signalOption(signal));
  if (head === null) throw new NotFoundError(`image ${formatReference(ref)} not found: the registry has no manifest ${reference}`);
  if (head.digest !== undefined && (await context.content.info(head.digest)) !== null) {
    return { bytes: await context.content.readBlob(head.digest, manifestBytesMax), digest: head.digest, mediaType: head.mediaType, transferred: 0 };
  }
  const fetched = await context.registry.getManifest(ref, reference, signalOption(signal));
  const bytes = fetched.bytes;
  await context.content.ensure({ digest: fetched.digest, size: bytes.length }, () => Promise.resolve([bytes]), signalOption(signal));
  return { ...fetched, transferred: bytes.length };
}

async function resolveManifest(context: PullContext, ref: ImageReference, platform: Platform, signal: AbortSignal | undefined): Promise<{ manifest: ImageManifest; digest: Digest; transferred: number }> {
  const reference = ref.digest ?? ref.tag ?? "latest";
  const top = await fetchManifest(context, ref, reference, signal);
  const document = parseManifestDocument(top.bytes, top.mediaType);
  if (document.kind === "manifest") return { manifest: document, digest: top.digest, transferred: top.transferred };
  const chosen = selectPlatform(document, platform);
  if (chosen === undefined) {
    const available = document.manifests.flatMap((entry) => (entry.platform === undefined ? [] : [formatPlatform(entry.platform)]));
    throw new NotFoundError(`image ${formatReference(ref)} has no ${formatPlatform(platform)} variant (it has: ${available.join(", ") || "none"})`);
  }
  const inner = await fetchManifest(context, ref, chosen.digest, signal);
  if (inner.digest !== chosen.digest) throw new InvalidArgumentError(`manifest ${chosen.digest} came back with digest ${inner.digest}`);
  const manifest = parseManifestDocument(inner.bytes, inner.mediaType);
  if (manifest.kind !== "manifest") throw new InvalidArgumentError(`index entry ${chosen.digest} is itself an index; nested indexes are not supported`);
  return { manifest, digest: inner.digest, transferred: top.transferred + inner.transferred };
}

async function downloadLayers(context: PullContext, ref: ImageReference, layers: readonly Descriptor[], options: PullOptions): Promise<number> {
  let transferred = 0;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < layers.length) {
      const layer = layers[next];
      next += 1;
      if (layer === undefined) return;
      throwIfAborted(options.signal);
      const result = await context.content.ensure(layer, (signal) => context.registry.openBlob(ref, layer, signalOption(signal)), {
        ...signalOption(options.signal),
        onProgress: (current) => options.onProgress?.({ type: "layer-downloading", digest: layer.digest, current, total: layer.size }),
      });
      if (result.transferred) {
        transferred += layer.size;
        options.onProgress?.({ type: "layer-downloaded", digest: layer.digest, size: layer.size });
      } else {
        options.onProgress?.({ type: "layer-exists", digest: layer.digest, size: layer.size });
      }
    }
  };
  const workers = Array.from({ length: Math.min(layerDownloadsConcurrentMax, layers.length) }, () => worker());
  await Promise.all(workers);
  return transferred;
}

/**
 * Pulls an image: manifest (index resolved to `platform`), config, then layers in parallel,
 * each blob verified by the content store; then unpacks the layers into snapshots and names
 * the image. Blobs already present are not fetched again.
 */
export async function pullImage(context: PullContext, ref: ImageReference, options: PullOptions = {}): Promise<ImageRecord> {
  throwIfAborted(options.signal);
  const platform = options.platform ?? context.platform;
  const { manifest, digest, transferred: manifestBytes } = await resolveManifest(context, ref, platform, options.signal);
  options.onProgress?.({ type: "resolved", reference: formatReference(ref), digest });
  for (const layer of manifest.layers) checkLayerMediaType(layer);
  const config = await ensureSmallBlob(context, ref, manifest.config, configBytesMax, options.signal);
  const document = parseImageConfigDocument(config.bytes);
  if (document.os !== platform.os || document.architecture !== platform.architecture) {
    context.logger.warn({ image: formatReference(ref), os: document.os, architecture: document.architecture }, "image platform differs from the requested one");
  }
  const layerBytes = await downloadLayers(context, ref, manifest.layers, options);
  const record = await context.images.buildRecord(digest, [], 0);
  await context.unpacker.unpack(record, {
    ...signalOption(options.signal),
    onEvent: (event) => options.onProgress?.(event),
  });
  const stored = await context.images.put(record, [formatReference(ref)]);
  options.onProgress?.({ type: "done", image: stored, transferredBytes: manifestBytes + config.transferred + layerBytes });
  return stored;
}
