import { AlreadyExistsError, NotFoundError, throwIfAborted } from "../../common/errors.js";
import type { Logger } from "../../common/logger.js";
import type { Descriptor, Digest } from "../content/digest.js";
import type { ContentProvider } from "../content/store.js";
import { applyLayer, type LayerLimits } from "../snapshots/apply.js";
import type { LayerSnapshotter } from "../snapshots/snapshotter.js";
import type { ImageRecord } from "./store.js";

/** Active snapshots used while extracting are named with this prefix (and cleaned at start). */
export const extractKeyPrefix = "extract/";

export type UnpackEvent = { type: "layer-extracting"; digest: Digest } | { type: "layer-extracted"; digest: Digest; unpacked: boolean };

let extractCounter = 0;

function has(snapshotter: LayerSnapshotter, key: string): boolean {
  try {
    snapshotter.stat(key);
    return true;
  } catch (error) {
    if (error instanceof NotFoundError) return false;
    throw error;
  }
}

/**
 * Unpacks image layers into committed snapshots named by chain id: each layer once, however
 * many images share it, and only once at a time (concurrent unpacks of a chain wait).
 */
export class Unpacker {
  readonly #content: ContentProvider;
  readonly #snapshotter: LayerSnapshotter;
  readonly #logger: Logger;
  readonly #limits: Partial<LayerLimits>;
  readonly #inflight = new Map<Digest, Promise<void>>();

  constructor(options: { content: ContentProvider; snapshotter: LayerSnapshotter; logger: Logger; limits?: Partial<LayerLimits> }) {
    this.#content = options.content;
    this.#snapshotter = options.snapshotter;
    this.#logger = options.logger;
    this.#limits = options.limits ?? {};
  }

  /** Removes extraction snapshots a crash left behind. */
  async cleanup(): Promise<void> {
    for (const info of this.#snapshotter.list()) {
      if (info.key.startsWith(extractKeyPrefix)) await this.#snapshotter.remove(info.key);
    }
  }

  isUnpacked(image: ImageRecord): boolean {
    const top = image.chainIds.at(-1);
    return top === undefined || has(this.#snapshotter, top);
  }

  async unpack(image: ImageRecord, options: { signal?: AbortSignal; onEvent?: (event: UnpackEvent) => void } = {}): Promise<void> {
    let parent: Digest | null = null;
    for (const [index, chainId] of image.chainIds.entries()) {
      throwIfAborted(options.signal);
      const layer = image.layers[index];
      const diffId = image.diffIds[index];
      if (layer === undefined || diffId === undefined) throw new NotFoundError(`image ${image.id} has no layer ${index}`);
      if (!has(this.#snapshotter, chainId)) {
        let running = this.#inflight.get(chainId);
        if (running === undefined) {
          options.onEvent?.({ type: "layer-extracting", digest: layer.digest });
          running = this.#unpackLayer({ chainId, parent, layer, diffId, signal: options.signal });
          this.#inflight.set(chainId, running);
          running.finally(() => this.#inflight.delete(chainId)).catch(() => undefined);
        }
        await running;
        options.onEvent?.({ type: "layer-extracted", digest: layer.digest, unpacked: true });
      } else {
        options.onEvent?.({ type: "layer-extracted", digest: layer.digest, unpacked: false });
      }
      parent = chainId;
    }
  }

  async #unpackLayer(input: { chainId: Digest; parent: Digest | null; layer: Descriptor; diffId: Digest; signal: AbortSignal | undefined }): Promise<void> {
    extractCounter += 1;
    const key = `${extractKeyPrefix}${extractCounter}/${input.chainId}`;
    await this.#snapshotter.prepare(key, input.parent);
    try {
      const applied = await applyLayer({
        root: this.#snapshotter.activeDirectory(key),
        source: await this.#content.open(input.layer.digest, input.signal === undefined ? {} : { signal: input.signal }),
        expectedDiffId: input.diffId,
        limits: this.#limits,
        logger: this.#logger,
        ...(input.signal === undefined ? {} : { signal: input.signal }),
      });
      await this.#snapshotter.commit(input.chainId, key);
      this.#logger.debug({ chainId: input.chainId, bytes: applied.uncompressedBytes, entries: applied.entries }, "layer unpacked");
    } catch (error) {
      await this.#snapshotter.remove(key);
      if (error instanceof AlreadyExistsError && has(this.#snapshotter, input.chainId)) return;
      throw error;
    }
  }
}
