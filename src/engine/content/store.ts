import { createHash, type Hash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, open, readdir, rename, rm, stat, type FileHandle } from "node:fs/promises";
import { join } from "node:path";

import {
  CancelledError,
  ConflictError,
  InvalidArgumentError,
  NotFoundError,
  ResourceExhaustedError,
  throwIfAborted,
  systemErrorCode,
} from "../../common/errors.js";
import { writeAll } from "../../common/files.js";
import type { Logger } from "../../common/logger.js";
import { digestHex, isDigest, parseDigest, type Digest } from "./digest.js";

/** Writers open at once; each holds a file descriptor and a temp file. */
export const contentWritersMax = 64;

export interface ContentInfo {
  readonly digest: Digest;
  readonly size: number;
}

/** The size and digest a blob must have; both are checked before it becomes visible. */
export interface ExpectedContent {
  readonly digest: Digest;
  readonly size: number;
}

/** Reads committed blobs. */
export interface ContentProvider {
  /** Streams a committed blob. Throws NotFoundError when absent. */
  open(digest: Digest, options?: { signal?: AbortSignal }): Promise<AsyncIterable<Buffer>>;
}

export interface ContentInfoProvider {
  /** The blob's size if committed, else null. */
  info(digest: Digest): Promise<ContentInfo | null>;
}

/** An open ingest: bytes go to a temp file and become a blob only on a verified commit. */
export interface ContentWriter {
  /** Throws InvalidArgumentError as soon as more bytes than expected arrive (the writer is then aborted). */
  write(chunk: Uint8Array): Promise<void>;
  /**
   * Verifies size and digest, fsyncs and renames into place. On a mismatch throws
   * InvalidArgumentError and removes the temp file. Committing an existing blob is fine.
   */
  commit(): Promise<ContentInfo>;
  /** Removes the temp file; safe to call more than once and after commit. */
  abort(): Promise<void>;
}

export interface ContentIngester {
  /**
   * Opens a writer for one blob. `ref` names the ingest: a second writer with a ref still open
   * gets ConflictError. Throws ResourceExhaustedError when contentWritersMax are open.
   */
  writer(ref: string, expected: ExpectedContent): Promise<ContentWriter>;
}

export interface IngestOptions {
  readonly signal?: AbortSignal;
  /** Called with the running byte count as data arrives. */
  readonly onProgress?: (bytes: number) => void;
}

/** The whole store: provider, ingester, and the housekeeping the image store needs. */
export interface ContentStore extends ContentProvider, ContentInfoProvider, ContentIngester {
  /** Reads a small blob whole, re-verifying its digest; ResourceExhaustedError above bytesMax. */
  readBlob(digest: Digest, bytesMax: number): Promise<Buffer>;
  /**
   * Makes sure a blob is present: does nothing if it is committed, waits if another ingest of
   * the same digest is running (one download, others wait), else calls `fetch` and ingests its
   * bytes. Returns whether this call transferred the bytes.
   */
  ensure(
    expected: ExpectedContent,
    fetch: (signal: AbortSignal | undefined) => Promise<AsyncIterable<Uint8Array> | Iterable<Uint8Array>>,
    options?: IngestOptions,
  ): Promise<{ transferred: boolean }>;
  /** Ingests bytes whose digest is not known in advance (archives); the digest is computed. */
  ingestComputed(source: AsyncIterable<Uint8Array>, options?: { signal?: AbortSignal; bytesMax?: number }): Promise<ContentInfo>;
  /** Throws NotFoundError when absent. */
  delete(digest: Digest): Promise<void>;
  list(): Promise<ContentInfo[]>;
}

let tempCounter = 0;

class ContentWriterImpl implements ContentWriter {
  readonly #store: ContentStoreImpl;
  readonly #ref: string;
  readonly #expected: ExpectedContent | undefined;
  readonly #bytesMax: number;
  readonly #tempPath: string;
  readonly #hash: Hash = createHash("sha256");
  readonly #handle: FileHandle;
  #written = 0;
  #closed = false;

  constructor(options: { store: ContentStoreImpl; ref: string; expected: ExpectedContent | undefined; bytesMax: number; tempPath: string; handle: FileHandle }) {
    this.#store = options.store;
    this.#ref = options.ref;
    this.#expected = options.expected;
    this.#bytesMax = options.bytesMax;
    this.#tempPath = options.tempPath;
    this.#handle = options.handle;
  }

  async write(chunk: Uint8Array): Promise<void> {
    if (this.#closed) throw new InvalidArgumentError(`content writer "${this.#ref}" is closed`);
    if (this.#written + chunk.length > this.#bytesMax) {
      await this.abort();
      throw new InvalidArgumentError(
        this.#expected === undefined
          ? `blob is larger than the ${this.#bytesMax}-byte limit`
          : `blob ${this.#expected.digest} is larger than its declared size ${this.#expected.size}`,
      );
    }
    this.#written += chunk.length;
    this.#hash.update(chunk);
    await writeAll(this.#handle, chunk);
  }

  async commit(): Promise<ContentInfo> {
    if (this.#closed) throw new InvalidArgumentError(`content writer "${this.#ref}" is closed`);
    const digest = parseDigest(`sha256:${this.#hash.digest("hex")}`);
    const expected = this.#expected;
    try {
      if (expected !== undefined && this.#written !== expected.size) {
        throw new InvalidArgumentError(`blob ${expected.digest} has ${this.#written} bytes, its descriptor says ${expected.size}`);
      }
      if (expected !== undefined && digest !== expected.digest) {
        throw new InvalidArgumentError(`blob content has digest ${digest}, expected ${expected.digest}: the source sent wrong data`);
      }
      await this.#handle.sync();
      await this.#handle.close();
      this.#closed = true;
      await rename(this.#tempPath, this.#store.blobPath(digest));
      await this.#store.syncBlobDirectory();
      return { digest, size: this.#written };
    } finally {
      await this.abort();
    }
  }

  async abort(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      await this.#handle.close();
    }
    this.#store.releaseWriter(this.#ref);
    await rm(this.#tempPath, { force: true });
  }
}

async function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise;
  throwIfAborted(signal);
  let onAbort = (): void => undefined;
  const aborted = new Promise<never>((_resolve, reject) => {
    onAbort = () => reject(new CancelledError("operation cancelled", { cause: signal.reason }));
  });
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    return await Promise.race([promise, aborted]);
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}

class ContentStoreImpl implements ContentStore {
  readonly #blobDirectory: string;
  readonly #ingestDirectory: string;
  readonly #logger: Logger;
  readonly #openRefs = new Set<string>();
  readonly #inflight = new Map<Digest, Promise<void>>();

  constructor(root: string, logger: Logger) {
    this.#blobDirectory = join(root, "content", "blobs", "sha256");
    this.#ingestDirectory = join(root, "content", "ingest");
    this.#logger = logger.child({ component: "content" });
  }

  async init(): Promise<void> {
    await mkdir(this.#blobDirectory, { recursive: true });
    // Temp files left by a crash are never valid blobs.
    await rm(this.#ingestDirectory, { recursive: true, force: true });
    await mkdir(this.#ingestDirectory, { recursive: true });
  }

  blobPath(digest: Digest): string {
    return join(this.#blobDirectory, digestHex(parseDigest(digest)));
  }

  async syncBlobDirectory(): Promise<void> {
    const handle = await open(this.#blobDirectory, "r");
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  }

  releaseWriter(ref: string): void {
    this.#openRefs.delete(ref);
  }

  async info(digest: Digest): Promise<ContentInfo | null> {
    try {
      const stats = await stat(this.blobPath(digest));
      return { digest, size: stats.size };
    } catch (error) {
      if (systemErrorCode(error) === "ENOENT") return null;
      throw error;
    }
  }

  async open(digest: Digest, options: { signal?: AbortSignal } = {}): Promise<AsyncIterable<Buffer>> {
    throwIfAborted(options.signal);
    if ((await this.info(digest)) === null) throw new NotFoundError(`content ${digest} is not in the content store`);
    const stream = createReadStream(this.blobPath(digest), options.signal === undefined ? {} : { signal: options.signal });
    return stream as AsyncIterable<Buffer>;
  }

  async readBlob(digest: Digest, bytesMax: number): Promise<Buffer> {
    const found = await this.info(digest);
    if (found === null) throw new NotFoundError(`content ${digest} is not in the content store`);
    if (found.size > bytesMax) throw new ResourceExhaustedError(`blob ${digest} has ${found.size} bytes, over the ${bytesMax}-byte limit`);
    const chunks: Buffer[] = [];
    for await (const chunk of await this.open(digest)) chunks.push(chunk);
    const data = Buffer.concat(chunks);
    const actual = `sha256:${createHash("sha256").update(data).digest("hex")}`;
    if (actual !== digest) throw new InvalidArgumentError(`blob ${digest} on disk is corrupt (digest ${actual}); remove and pull it again`);
    return data;
  }

  async #openWriter(ref: string, expected: ExpectedContent | undefined, bytesMax: number): Promise<ContentWriter> {
    if (this.#openRefs.has(ref)) throw new ConflictError(`content ingest "${ref}" is already in progress`);
    if (this.#openRefs.size >= contentWritersMax) throw new ResourceExhaustedError(`more than ${contentWritersMax} content ingests at once`);
    tempCounter += 1;
    const tempPath = join(this.#ingestDirectory, `${process.pid}-${tempCounter}`);
    const handle = await open(tempPath, "wx", 0o600);
    this.#openRefs.add(ref);
    return new ContentWriterImpl({ store: this, ref, expected, bytesMax, tempPath, handle });
  }

  writer(ref: string, expected: ExpectedContent): Promise<ContentWriter> {
    const digest = parseDigest(expected.digest);
    if (!Number.isSafeInteger(expected.size) || expected.size < 0) {
      throw new InvalidArgumentError(`blob ${digest} has an invalid size ${expected.size}`);
    }
    return this.#openWriter(ref, { digest, size: expected.size }, expected.size);
  }

  async #copyInto(writer: ContentWriter, source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, options: IngestOptions): Promise<ContentInfo> {
    let bytes = 0;
    try {
      for await (const chunk of source) {
        throwIfAborted(options.signal);
        await writer.write(chunk);
        bytes += chunk.length;
        options.onProgress?.(bytes);
      }
      return await writer.commit();
    } finally {
      await writer.abort();
    }
  }

  async ensure(
    expected: ExpectedContent,
    fetch: (signal: AbortSignal | undefined) => Promise<AsyncIterable<Uint8Array> | Iterable<Uint8Array>>,
    options: IngestOptions = {},
  ): Promise<{ transferred: boolean }> {
    const digest = parseDigest(expected.digest);
    throwIfAborted(options.signal);
    const running = this.#inflight.get(digest);
    if (running !== undefined) {
      await abortable(running, options.signal);
      return { transferred: false };
    }
    if ((await this.info(digest)) !== null) return { transferred: false };
    const again = this.#inflight.get(digest);
    if (again !== undefined) {
      await abortable(again, options.signal);
      return { transferred: false };
    }
    const ingest = (async (): Promise<void> => {
      const writer = await this.writer(`ensure-${digest}`, expected);
      await this.#copyInto(writer, await fetch(options.signal), options);
    })();
    this.#inflight.set(digest, ingest);
    try {
      await ingest;
    } finally {
      this.#inflight.delete(digest);
    }
    this.#logger.debug({ digest, size: expected.size }, "blob ingested");
    return { transferred: true };
  }

  async ingestComputed(source: AsyncIterable<Uint8Array>, options: { signal?: AbortSignal; bytesMax?: number } = {}): Promise<ContentInfo> {
    tempCounter += 1;
    const writer = await this.#openWriter(`computed-${tempCounter}`, undefined, options.bytesMax ?? Number.MAX_SAFE_INTEGER);
    return this.#copyInto(writer, source, options.signal === undefined ? {} : { signal: options.signal });
  }

  async delete(digest: Digest): Promise<void> {
    try {
      await rm(this.blobPath(digest));
    } catch (error) {
      if (systemErrorCode(error) === "ENOENT") {
        throw new NotFoundError(`content ${digest} is not in the content store`, { cause: error });
      }
      throw error;
    }
  }

  async list(): Promise<ContentInfo[]> {
    const names = await readdir(this.#blobDirectory);
    const found: ContentInfo[] = [];
    for (const name of names) {
      const digest = `sha256:${name}`;
      if (!isDigest(digest)) continue;
      const info = await this.info(digest);
      if (info !== null) found.push(info);
    }
    return found;
  }
}

/**
 * Opens (creating if needed) the digest-addressed blob store under `<root>/content`. Blobs
 * live at `blobs/sha256/<hex>`; ingests go through `ingest/` temp files.
 */
export async function openContentStore(options: { root: string; logger: Logger }): Promise<ContentStore> {
  const store = new ContentStoreImpl(options.root, options.logger);
  await store.init();
  return store;
}

