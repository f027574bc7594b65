import { lstatSync } from "node:fs";
import { join } from "node:path";

import { mountRootfs, unmountRootfs } from "./rootfs-mount.js";
import { readAccountFiles, type AccountFiles } from "./spec/user.js";
import type { RootfsMount } from "./types.js";

/** Images whose account files are kept; each is two small texts. */
export const accountFilesImagesMax = 64;

export interface AccountFilesRequest {
  imageId: string;
  /** The container's bundle root directory, where its rootfs can be mounted for a moment. */
  rootfsPath: string;
  mounts: readonly RootfsMount[];
  /** RootfsProvider.writableLayer. */
  writableLayer: string | null;
}

async function readMounted(request: AccountFilesRequest): Promise<AccountFiles> {
  await mountRootfs(request.mounts, request.rootfsPath);
  try {
    return readAccountFiles(request.rootfsPath);
  } finally {
    await unmountRootfs(request.rootfsPath, { mounted: true });
  }
}

/**
 * The /etc/passwd and /etc/group a container start resolves its user against. The OCI
 * runtime mounts a container's rootfs inside the container (SpecInput.rootfsMounts), so the
 * engine reads them by mounting it on the host for a moment, and only once per image: a
 * container whose writable layer has no /etc sees the image's files, and an image never
 * changes. A container with its own /etc (one restarted after writing there) is read on
 * its own at each start.
 */
export class ContainerAccountFiles {
  /** Pending reads too: a hundred replicas starting at once mount their image once. */
  readonly #byImage = new Map<string, Promise<AccountFiles>>();

  async read(request: AccountFilesRequest): Promise<AccountFiles> {
    const layer = request.writableLayer;
    // No layer to look in, or one with its own /etc: this container's files may not be its image's.
    if (layer === null || lstatSync(join(layer, "etc"), { throwIfNoEntry: false }) !== undefined) return await readMounted(request);
    const cached = this.#byImage.get(request.imageId);
    if (cached !== undefined) return await cached;
    const reading = readMounted(request);
    this.#byImage.set(request.imageId, reading);
    // A Map iterates in insertion order: the image read first goes.
    const oldest = this.#byImage.keys().next().value;
    if (this.#byImage.size > accountFilesImagesMax && oldest !== undefined) this.#byImage.delete(oldest);
    try {
      return await reading;
    } catch (error) {
      // A failed read (an interrupted mount) is not kept: the next start tries again.
      if (this.#byImage.get(request.imageId) === reading) this.#byImage.delete(request.imageId);
      throw error;
    }
  }
}
