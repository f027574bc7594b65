import { lstat, mkdir, readFile, readdir, rm } from "node:fs/promises";

import { CoalescedRunner } from "../../common/coalesced-runner.js";
import { writeFileAtomic } from "../../common/files.js";
import { join } from "node:path";

import {
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  ResourceExhaustedError,
  systemErrorCode,
} from "../../common/errors.js";
import type { Clock } from "../../common/clock.js";
import type { Logger } from "../../common/logger.js";

/** Snapshots in one store; each is a directory and a metadata record. */
export const snapshotsMax = 100_000;
/** Bytes of a snapshot key (keys are chain ids, container ids and temp names). */
export const snapshotKeyBytesMax = 256;
/** The kernel takes mount data up to one page; leave room for the other options. */
export const overlayOptionsBytesMax = 4000;
const metadataVersion = 1;

export type SnapshotKind = "active" | "view" | "committed";

/** A mount as an OCI runtime spec `mounts` entry wants it (without the destination). */
export interface Mount {
  readonly type: string;
  readonly source: string;
  readonly options: readonly string[];
}

export interface SnapshotInfo {
  readonly key: string;
  readonly kind: SnapshotKind;
  readonly parent: string | null;
  /** Milliseconds since the epoch. */
  readonly created: number;
}

export interface SnapshotUsage {
  readonly size: number;
  readonly inodes: number;
}

/**
 * Layered filesystem snapshots, after containerd's snapshotter: committed snapshots are
 * read-only layers named by chain id; an active snapshot is a writable layer on top of a
 * committed parent chain, handed out as mounts.
 */
export interface Snapshotter {
  /** NotFoundError when `key` is unknown. */
  stat(key: string): SnapshotInfo;
  list(): SnapshotInfo[];
  /**
   * Creates a writable snapshot over `parent` (a committed key, or null for an empty one) and
   * returns its mounts. AlreadyExistsError if `key` exists; NotFoundError or
   * FailedPreconditionError if `parent` is missing or not committed.
   */
  prepare(key: string, parent: string | null): Promise<Mount[]>;
  /** Like prepare but read-only; the view's contents are the parent's. */
  view(key: string, parent: string): Promise<Mount[]>;
  /** The mounts of an active snapshot or view. FailedPreconditionError for a committed one. */
  mounts(key: string): Mount[];
  /** Freezes active `key` as committed `name`; `key` disappears. AlreadyExistsError if `name` exists. */
  commit(name: string, key: string): Promise<void>;
  /** Deletes a snapshot and its files. FailedPreconditionError while other snapshots build on it. */
  remove(key: string): Promise<void>;
  /** Disk use of the snapshot's own layer (not its parents). */
  usage(key: string): Promise<SnapshotUsage>;
}

/** A snapshotter whose active layers can be written directly, which layer unpacking needs. */
export interface LayerSnapshotter extends Snapshotter {
  /** The writable directory of active snapshot `key` (the overlay upper dir). */
  activeDirectory(key: string): string;
}

interface SnapshotRecord {
  id: number;
  kind: SnapshotKind;
  parent: string | null;
  created: number;
}

interface Metadata {
  nextId: number;
  snapshots: Map<string, SnapshotRecord>;
}

function parseRecord(key: string, value: unknown): SnapshotRecord {
  if (typeof value !== "object" || value === null) throw new InvalidArgumentError(`snapshot metadata for "${key}" is not an object`);
  const record: Record<string, unknown> = { ...value };
  const { id, kind, parent, created } = record;
  if (typeof id !== "number" || !Number.isSafeInteger(id) || id < 1) throw new InvalidArgumentError(`snapshot "${key}" has a bad id`);
  if (kind !== "active" && kind !== "view" && kind !== "committed") throw new InvalidArgumentError(`snapshot "${key}" has a bad kind`);
  if (parent !== null && typeof parent !== "string") throw new InvalidArgumentError(`snapshot "${key}" has a bad parent`);
  if (typeof created !== "number") throw new InvalidArgumentError(`snapshot "${key}" has a bad creation time`);
  return { id, kind, parent, created };
}

function parseMetadata(text: string): Metadata {
  const parsed: unknown = JSON.parse(text);
  if (typeof parsed !== "object" || parsed === null) throw new InvalidArgumentError("snapshot metadata is not an object");
  const fields: Record<string, unknown> = { ...parsed };
  if (fields["version"] !== metadataVersion) throw new InvalidArgumentError(`snapshot metadata version ${String(fields["version"])} is not ${metadataVersion}`);
  const nextId = fields["nextId"];
  const snapshots = fields["snapshots"];
  if (typeof nextId !== "number" || !Number.isSafeInteger(nextId)) throw new InvalidArgumentError("snapshot metadata has a bad nextId");
  if (typeof snapshots !== "object" || snapshots === null) throw new InvalidArgumentError("snapshot metadata has no snapshots");
  const records = new Map<string, SnapshotRecord>();
  for (const [key, value] of Object.entries(snapshots)) records.set(key, parseRecord(key, value));
  return { nextId, snapshots: records };
}

function checkKey(key: string): void {
  if (key === "" || Buffer.byteLength(key) > snapshotKeyBytesMax) {
    throw new InvalidArgumentError(`snapshot key must be 1 to ${snapshotKeyBytesMax} bytes`);
  }
}

class OverlaySnapshotterImpl implements LayerSnapshotter {
  readonly #directory: string;
  readonly #metadataPath: string;
  readonly #clock: Clock;
  readonly #logger: Logger;
  #metadata: Metadata = { nextId: 1, snapshots: new Map() };
  /**
   * Metadata writes, one at a time (two never interleave their renames); a change made
   * while a write waits rides on it (see #save).
   */
  readonly #writes = new CoalescedRunner(() => this.#write());

  constructor(options: { root: string; clock: Clock; logger: Logger }) {
    this.#directory = join(options.root, "snapshots");
    this.#metadataPath = join(this.#directory, "metadata.json");
    this.#clock = options.clock;
    this.#logger = options.logger.child({ component: "snapshotter" });
  }

  async init(): Promise<void> {
    await mkdir(this.#directory, { recursive: true });
    try {
      this.#metadata = parseMetadata(await readFile(this.#metadataPath, "utf8"));
    } catch (error) {
      if (systemErrorCode(error) !== "ENOENT") throw error;
    }
  }

  /**
   * Persists the metadata as it is when the write begins (durably: a lost record would
   * orphan a layer directory, or lose a container's rootfs). The file holds every snapshot,
   * so a hundred containers created at once would rewrite it a hundred times; instead a
   * change made while a write is in flight waits for the one next write, which carries all
   * such changes (group commit). A caller's promise settles once its change is on disk.
   */
  #save(): Promise<void> {
    return this.#writes.run();
  }

  async #write(): Promise<void> {
    const snapshots = Object.fromEntries(this.#metadata.snapshots);
    await writeFileAtomic(this.#metadataPath, JSON.stringify({ version: metadataVersion, nextId: this.#metadata.nextId, snapshots }));
  }

  #record(key: string): SnapshotRecord {
    const record = this.#metadata.snapshots.get(key);
    if (record === undefined) throw new NotFoundError(`snapshot "${key}" does not exist`);
    return record;
  }

  #layerPath(record: SnapshotRecord, part: "fs" | "work"): string {
    return join(this.#directory, String(record.id), part);
  }

  stat(key: string): SnapshotInfo {
    const record = this.#record(key);
    return { key, kind: record.kind, parent: record.parent, created: record.created };
  }

  list(): SnapshotInfo[] {
    return [...this.#metadata.snapshots.keys()].map((key) => this.stat(key));
  }

  /** Layer directories from `key` down to the base, topmost first. */
  #chain(key: string | null): string[] {
    const dirs: string[] = [];
    let current = key;
    while (current !== null) {
      const record = this.#record(current);
      dirs.push(this.#layerPath(record, "fs"));
      current = record.parent;
      if (dirs.length > this.#metadata.snapshots.size) throw new InvalidArgumentError(`snapshot "${key}" has a parent cycle`);
    }
    return dirs;
  }

  async #create(key: string, parent: string | null, kind: SnapshotKind): Promise<Mount[]> {
    checkKey(key);
    if (this.#metadata.snapshots.has(key)) throw new AlreadyExistsError(`snapshot "${key}" already exists`);
    if (this.#metadata.snapshots.size >= snapshotsMax) throw new ResourceExhaustedError(`snapshot store holds ${snapshotsMax} snapshots; remove some`);
    if (parent !== null && this.#record(parent).kind !== "committed") {
      throw new FailedPreconditionError(`snapshot parent "${parent}" is not committed`);
    }
    const record: SnapshotRecord = { id: this.#metadata.nextId, kind, parent, created: this.#clock.now() };
    this.#metadata.nextId += 1;
    // Reserve the key before the first await so that a concurrent prepare of it fails.
    this.#metadata.snapshots.set(key, record);
    const layerDirectory = join(this.#directory, String(record.id));
    try {
      await rm(layerDirectory, { recursive: true, force: true });
      await mkdir(this.#layerPath(record, "fs"), { recursive: true, mode: 0o755 });
      await mkdir(this.#layerPath(record, "work"), { mode: 0o700 });
      await this.#save();
      return this.mounts(key);
    } catch (error) {
      this.#metadata.snapshots.delete(key);
      await rm(layerDirectory, { recursive: true, force: true });
      throw error;
    }
  }

  prepare(key: string, parent: string | null): Promise<Mount[]> {
    return this.#create(key, parent, "active");
  }

  view(key: string, parent: string): Promise<Mount[]> {
    return this.#create(key, parent, "view");
  }

  mounts(key: string): Mount[] {
    const record = this.#record(key);
    const lower = this.#chain(record.parent);
    switch (record.kind) {
      case "committed":
        throw new FailedPreconditionError(`snapshot "${key}" is committed; prepare or view a child to mount it`);
      case "view": {
        const [only] = lower;
        if (lower.length === 1 && only !== undefined) return [{ type: "bind", source: only, options: ["ro", "rbind"] }];
        return [{ type: "overlay", source: "overlay", options: [this.#lowerdir(lower)] }];
      }
      case "active": {
        const upper = this.#layerPath(record, "fs");
        if (lower.length === 0) return [{ type: "bind", source: upper, options: ["rw", "rbind"] }];
        const options = [this.#lowerdir(lower), `upperdir=${upper}`, `workdir=${this.#layerPath(record, "work")}`];
        if (Buffer.byteLength(options.join(",")) > overlayOptionsBytesMax) {
          throw new ResourceExhaustedError(`snapshot "${key}" has ${lower.length} layers, too many for one overlay mount`);
        }
        return [{ type: "overlay", source: "overlay", options }];
      }
    }
  }

  #lowerdir(dirs: readonly string[]): string {
    for (const dir of dirs) {
      if (dir.includes(":") || dir.includes(",")) throw new InvalidArgumentError(`snapshot directory "${dir}" cannot appear in overlay options`);
    }
    return `lowerdir=${dirs.join(":")}`;
  }

  activeDirectory(key: string): string {
    const record = this.#record(key);
    if (record.kind !== "active") throw new FailedPreconditionError(`snapshot "${key}" is not active`);
    return this.#layerPath(record, "fs");
  }

  async commit(name: string, key: string): Promise<void> {
    checkKey(name);
    const record = this.#record(key);
    if (record.kind !== "active") throw new FailedPreconditionError(`snapshot "${key}" is not active and cannot be committed`);
    if (this.#metadata.snapshots.has(name)) throw new AlreadyExistsError(`snapshot "${name}" already exists`);
    this.#metadata.snapshots.delete(key);
    this.#metadata.snapshots.set(name, { ...record, kind: "committed" });
    await this.#save();
    // The work dir is only for overlay's own use while mounted writable.
    await rm(this.#layerPath(record, "work"), { recursive: true, force: true });
  }

  async remove(key: string): Promise<void> {
    const record = this.#record(key);
    const children = [...this.#metadata.snapshots].filter(([, other]) => other.parent === key).map(([child]) => child);
    if (children.length > 0) {
      throw new FailedPreconditionError(`snapshot "${key}" is the parent of ${children.slice(0, 3).join(", ")}; remove those first`);
    }
    await rm(join(this.#directory, String(record.id)), { recursive: true, force: true });
    this.#metadata.snapshots.delete(key);
    await this.#save();
    this.#logger.debug({ key }, "snapshot removed");
  }

  async usage(key: string): Promise<SnapshotUsage> {
    const record = this.#record(key);
    let size = 0;
    let inodes = 0;
    const seen = new Set<number>();
    const walk = async (path: string): Promise<void> => {
      const stats = await lstat(path);
      if (seen.has(stats.ino)) return;
      seen.add(stats.ino);
      inodes += 1;
      size += stats.blocks * 512;
      if (!stats.isDirectory()) return;
      for (const name of await readdir(path)) await walk(join(path, name));
    };
    await walk(this.#layerPath(record, "fs"));
    return { size, inodes };
  }
}

/**
 * Opens (creating if needed) the overlayfs snapshotter under `<root>/snapshots`: one numbered
 * directory per snapshot with `fs` (the layer) and `work` (overlay's workdir), plus
 * `metadata.json` (keys, kinds, parents), rewritten atomically on every change.
 */
export async function openOverlaySnapshotter(options: { root: string; clock: Clock; logger: Logger }): Promise<LayerSnapshotter> {
  const snapshotter = new OverlaySnapshotterImpl(options);
  await snapshotter.init();
  return snapshotter;
}
