import { createHash } from "node:crypto";
import { constants } from "node:fs";
import { chmod, lchown, link, lstat, lutimes, mkdir, open, rm, symlink } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { createGunzip } from "node:zlib";

import {
  FailedPreconditionError,
  InvalidArgumentError,
  NotImplementedError,
  ResourceExhaustedError,
  throwIfAborted,
  systemErrorCode,
} from "../../common/errors.js";
import { writeAll } from "../../common/files.js";
import type { Logger } from "../../common/logger.js";
import { readTar, type TarEntry } from "../archive/tar-reader.js";
import { parseDigest, type Digest } from "../content/digest.js";
import { runTool } from "./tools.js";

/** Entries (tar headers of any kind) in one layer. */
export const layerEntriesMaxDefault = 1_000_000;
/** Uncompressed bytes of one layer: the gzip-bomb cap. */
export const layerUncompressedBytesMaxDefault = 32 * 1024 * 1024 * 1024;
/** One path component (Linux NAME_MAX). */
export const layerNameBytesMax = 255;

const whiteoutPrefix = ".wh.";
const opaqueWhiteout = ".wh..wh..opq";
/** Extended attributes a layer may set; trusted.* (overlay's own) and security.selinux are refused. */
const allowedXattr = (name: string): boolean => name === "security.capability" || name.startsWith("user.");

export interface LayerLimits {
  readonly entriesMax: number;
  readonly uncompressedBytesMax: number;
}

export interface ApplyLayerOptions {
  /** An empty directory owned by the caller (an active snapshot's upper directory). */
  readonly root: string;
  /** The layer blob: gzip or uncompressed tar; zstd is refused. */
  readonly source: AsyncIterable<Uint8Array>;
  /** When set, the uncompressed digest must match or the apply fails. */
  readonly expectedDiffId?: Digest;
  readonly limits?: Partial<LayerLimits>;
  /** Root can chown and make device nodes; default: whether this process runs as uid 0. */
  readonly privileged?: boolean;
  readonly logger: Logger;
  readonly signal?: AbortSignal;
}

export interface AppliedLayer {
  readonly diffId: Digest;
  readonly uncompressedBytes: number;
  readonly entries: number;
}

async function* gunzipChunks(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  const input = Readable.from(source);
  const gunzip = createGunzip();
  input.once("error", (error) => gunzip.destroy(error));
  input.pipe(gunzip);
  try {
    for await (const chunk of gunzip) yield chunk as Buffer;
  } finally {
    input.destroy();
    gunzip.destroy();
  }
}

/** Detects the compression from the magic bytes: media types lie more often than magic does. */
async function* decompressLayer(source: AsyncIterable<Uint8Array>): AsyncGenerator<Buffer> {
  const iterator = source[Symbol.asyncIterator]();
  const held: Buffer[] = [];
  let heldBytes = 0;
  let ended = false;
  try {
    while (heldBytes < 4 && !ended) {
      const result = await iterator.next();
      if (result.done === true) ended = true;
      else {
        held.push(Buffer.from(result.value));
        heldBytes += result.value.length;
      }
    }
    const head = Buffer.concat(held);
    if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) {
      throw new NotImplementedError("layer is zstd-compressed; shoal supports gzip and uncompressed layers only (re-push the image with gzip layers)");
    }
    const chunks = (async function* (): AsyncGenerator<Buffer> {
      if (head.length > 0) yield head;
      while (!ended) {
        const result = await iterator.next();
        if (result.done === true) ended = true;
        else yield Buffer.from(result.value);
      }
    })();
    if (head[0] === 0x1f && head[1] === 0x8b) yield* gunzipChunks(chunks);
    else yield* chunks;
  } finally {
    if (!ended) await iterator.return?.();
  }
}

/** Hashes and counts the uncompressed stream; the count is the gzip-bomb guard. */
async function* measured(source: AsyncIterable<Buffer>, bytesMax: number, totals: { bytes: number; hash: ReturnType<typeof createHash> }): AsyncGenerator<Buffer> {
  for await (const chunk of source) {
    totals.bytes += chunk.length;
    if (totals.bytes > bytesMax) {
      throw new ResourceExhaustedError(`layer expands to more than ${bytesMax} bytes uncompressed (a decompression bomb?)`);
    }
    totals.hash.update(chunk);
    yield chunk;
  }
}

/**
 * Splits an archive path into components that stay inside the layer: a leading "/" is dropped
 * (absolute paths become relative, as tar does) and ".." is refused outright.
 */
export function confineLayerPath(raw: string): string[] {
  const components = raw.split("/").filter((part) => part !== "" && part !== ".");
  for (const part of components) {
    if (part === "..") throw new InvalidArgumentError(`layer entry "${raw}" uses ".." to escape the layer`);
    if (Buffer.byteLength(part) > layerNameBytesMax) {
      throw new InvalidArgumentError(`layer entry "${raw}" has a name longer than ${layerNameBytesMax} bytes`);
    }
  }
  return components;
}

class LayerExtractor {
  readonly #root: string;
  readonly #privileged: boolean;
  readonly #logger: Logger;
  readonly #signal: AbortSignal | undefined;
  readonly #directoryTimes: { path: string; mtime: number }[] = [];
  skippedDevices = 0;

  constructor(options: { root: string; privileged: boolean; logger: Logger; signal: AbortSignal | undefined }) {
    this.#root = options.root;
    this.#privileged = options.privileged;
    this.#logger = options.logger;
    this.#signal = options.signal;
  }

  /**
   * Walks `components` below the root with lstat, never following a symlink: a parent that is
   * a symlink (or not a directory) fails the layer. Missing parents are created when `create`.
   */
  async #resolveDirectory(components: readonly string[], raw: string, create: boolean): Promise<string> {
    let current = this.#root;
    for (const part of components) {
      current = join(current, part);
      let stats;
      try {
        stats = await lstat(current);
      } catch (error) {
        if (systemErrorCode(error) !== "ENOENT" || !create) {
          throw new InvalidArgumentError(`layer entry "${raw}" refers to a missing directory "${components.join("/")}"`, { cause: error });
        }
        await mkdir(current, { mode: 0o755 });
        continue;
      }
      if (stats.isSymbolicLink()) {
        throw new InvalidArgumentError(`layer entry "${raw}" passes through the symlink "${part}": refused, it could point outside the layer`);
      }
      if (!stats.isDirectory()) throw new InvalidArgumentError(`layer entry "${raw}" has a parent "${part}" that is not a directory`);
    }
    return current;
  }

  async #removeExisting(path: string, keepDirectory: boolean): Promise<boolean> {
    try {
      const stats = await lstat(path);
      if (keepDirectory && stats.isDirectory()) return true;
      await rm(path, { recursive: true, force: true });
    } catch (error) {
      if (systemErrorCode(error) !== "ENOENT") throw error;
    }
    return false;
  }

  async apply(entry: TarEntry): Promise<void> {
    throwIfAborted(this.#signal);
    const components = confineLayerPath(entry.path);
    const name = components.at(-1);
    if (name === undefined) return; // the layer root itself ("./"): its metadata is the snapshot's
    const parent = await this.#resolveDirectory(components.slice(0, -1), entry.path, true);
    if (name.startsWith(whiteoutPrefix)) {
      await this.#whiteout(parent, name, entry.path);
      return;
    }
    const path = join(parent, name);
    switch (entry.type) {
      case "directory":
        if (!(await this.#removeExisting(path, true))) await mkdir(path, { mode: 0o700 });
        await this.#setMetadata(path, entry);
        this.#directoryTimes.push({ path, mtime: entry.mtime });
        return;
      case "file":
        await this.#removeExisting(path, false);
        await this.#writeFile(path, entry);
        break;
      case "symlink":
        await this.#removeExisting(path, false);
        await symlink(entry.linkpath, path);
        break;
      case "hardlink":
        await this.#hardlink(path, entry);
        return;
      case "char-device":
      case "block-device":
        if (!this.#privileged) {
          this.skippedDevices += 1;
          return;
        }
        await this.#removeExisting(path, false);
        await runTool("mknod", ["-m", (entry.mode & 0o7777).toString(8), path, entry.type === "char-device" ? "c" : "b", String(entry.devmajor), String(entry.devminor)]);
        break;
      case "fifo":
        await this.#removeExisting(path, false);
        await runTool("mkfifo", ["-m", (entry.mode & 0o7777).toString(8), path]);
        break;
    }
    await this.#setMetadata(path, entry);
    await lutimes(path, entry.mtime, entry.mtime);
  }

  async #whiteout(parent: string, name: string, raw: string): Promise<void> {
    if (name === opaqueWhiteout) {
      if (!this.#privileged) throw new FailedPreconditionError(`layer opaque marker "${raw}" needs root to set a trusted.* xattr`);
      await runTool("setfattr", ["-h", "-n", "trusted.overlay.opaque", "-v", "y", parent]);
      return;
    }
    // Other .wh..wh. names are aufs bookkeeping (hardlink dirs), meaningless on overlay.
    if (name.startsWith(`${whiteoutPrefix}${whiteoutPrefix}`)) return;
    const target = name.slice(whiteoutPrefix.length);
    if (target === "" || target === "." || target === "..") {
      throw new InvalidArgumentError(`layer whiteout "${raw}" names no file inside the layer`);
    }
    if (!this.#privileged) throw new FailedPreconditionError(`layer whiteout "${raw}" needs root to create an overlay whiteout device`);
    const path = join(parent, target);
    await this.#removeExisting(path, false);
    await runTool("mknod", ["-m", "0", path, "c", "0", "0"]);
  }

  async #writeFile(path: string, entry: TarEntry): Promise<void> {
    // O_EXCL and O_NOFOLLOW: never write through whatever might already sit at this name.
    const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
    const handle = await open(path, flags, 0o600);
    try {
      for await (const chunk of entry.body()) await writeAll(handle, chunk);
    } finally {
      await handle.close();
    }
  }

  async #hardlink(path: string, entry: TarEntry): Promise<void> {
    const targetComponents = confineLayerPath(entry.linkpath);
    const targetName = targetComponents.at(-1);
    if (targetName === undefined) throw new InvalidArgumentError(`layer hardlink "${entry.path}" points at the layer root`);
    const targetParent = await this.#resolveDirectory(targetComponents.slice(0, -1), entry.linkpath, false);
    const target = join(targetParent, targetName);
    if (target === path) return;
    let stats;
    try {
      stats = await lstat(target);
    } catch (error) {
      throw new InvalidArgumentError(`layer hardlink "${entry.path}" points at "${entry.linkpath}", which is not in this layer`, { cause: error });
    }
    if (stats.isDirectory()) throw new InvalidArgumentError(`layer hardlink "${entry.path}" points at a directory`);
    await this.#removeExisting(path, false);
    await link(target, path);
  }

  async #setMetadata(path: string, entry: TarEntry): Promise<void> {
    // chown clears setuid/setgid and file capabilities, so it comes first.
    if (this.#privileged) await lchown(path, entry.uid, entry.gid);
    if (entry.type !== "symlink") await chmod(path, entry.mode & 0o7777);
    for (const [name, value] of entry.xattrs) {
      if (!allowedXattr(name)) {
        this.#logger.debug({ path: entry.path, xattr: name }, "layer xattr ignored");
        continue;
      }
      await runTool("setfattr", ["-h", "-n", name, "-v", `0x${value.toString("hex")}`, path]);
    }
  }

  /** Directory mtimes last: creating children changed them. Deepest first. */
  async finish(): Promise<void> {
    for (const { path, mtime } of this.#directoryTimes.reverse()) await lutimes(path, mtime, mtime);
  }
}

/**
 * Extracts a layer diff into `root`, refusing anything that could touch a path outside it:
 * ".." components, parents that are symlinks, hardlinks to targets outside the layer,
 * whiteouts naming no file. Whiteouts become overlay whiteouts (char 0/0) and opaque markers
 * (trusted.overlay.opaque=y). Throws on the first hostile entry; the caller removes `root`.
 */
export async function applyLayer(options: ApplyLayerOptions): Promise<AppliedLayer> {
  const limits: LayerLimits = {
    entriesMax: options.limits?.entriesMax ?? layerEntriesMaxDefault,
    uncompressedBytesMax: options.limits?.uncompressedBytesMax ?? layerUncompressedBytesMaxDefault,
  };
  throwIfAborted(options.signal);
  const totals = { bytes: 0, hash: createHash("sha256") };
  const extractor = new LayerExtractor({
    root: options.root,
    privileged: options.privileged ?? process.getuid?.() === 0,
    logger: options.logger,
    signal: options.signal,
  });
  let entries = 0;
  const stream = measured(decompressLayer(options.source), limits.uncompressedBytesMax, totals);
  for await (const entry of readTar(stream, { headersMax: limits.entriesMax })) {
    entries += 1;
    await extractor.apply(entry);
  }
  await extractor.finish();
  const diffId = parseDigest(`sha256:${totals.hash.digest("hex")}`);
  if (options.expectedDiffId !== undefined && diffId !== options.expectedDiffId) {
    throw new InvalidArgumentError(`layer content has diff id ${diffId}, the image config says ${options.expectedDiffId}: the image is corrupt`);
  }
  if (extractor.skippedDevices > 0) {
    options.logger.warn({ devices: extractor.skippedDevices }, "device nodes in layer skipped: not running as root");
  }
  return { diffId, uncompressedBytes: totals.bytes, entries };
}
