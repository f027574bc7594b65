import { mkdir } from "node:fs/promises";
import { join } from "node:path";

import type { Logger } from "../../common/logger.js";
import type { ConfState, Entry, HardState, Snapshot } from "../core/types.js";
import type { LogStorage, WritableLogStorage } from "../storage/log-storage.js";
import { MemoryLogStorage } from "../storage/memory-storage.js";
import { Snapshotter } from "../snap/snapshotter.js";
import type { SnapshotFileOpener, SnapshotFileProblem } from "../snap/snapshotter.js";
import { WriteAheadLog } from "./wal.js";
import type { SegmentOpener } from "./wal.js";

export interface DiskLogStorageOptions {
  /** The node's raft data directory; `wal/` and `snap/` are created inside it. */
  readonly dir: string;
  readonly logger: Logger;
  readonly segmentBytesTarget?: number;
  /** Fault-injection seam for tests; see WalOptions.openSegment. */
  readonly openSegment?: SegmentOpener;
  /** Fault- and timing-injection seam for tests: opens snapshot files for writing. */
  readonly openSnapshotFile?: SnapshotFileOpener;
}

/** What a durable write of one Ready holds; see DiskLogStorage.save(). */
export interface DiskLogStorageSave {
  readonly snapshot: Snapshot | null;
  readonly entries: readonly Entry[];
  readonly hardState: HardState | null;
}

/**
 * A LogStorage kept in memory (MemoryLogStorage, which the core reads) and made durable by
 * a write-ahead log plus snapshot files. open() loads the newest valid snapshot and replays
 * the WAL after it. save() is the driver's group commit: a Ready's snapshot, entries and
 * hard state with one fsync. The single WritableLogStorage methods each fsync on their own,
 * so that every one is durable when its promise resolves.
 *
 * The membership (ConfState) is durable through snapshots and conf-change entries: after a
 * restart initialState() reports the snapshot's, and the driver re-applies the conf-change
 * entries that follow it, as etcd does.
 */
export class DiskLogStorage implements LogStorage, WritableLogStorage {
  readonly #memory: MemoryLogStorage;
  readonly #wal: WriteAheadLog;
  readonly #snapshotter: Snapshotter;
  readonly #skippedSnapshots: SnapshotFileProblem[];
  /** The last WAL sync asked for; the next one starts after it (see #sync). */
  #syncTail: Promise<void> = Promise.resolve();

  private constructor(memory: MemoryLogStorage, wal: WriteAheadLog, snapshotter: Snapshotter, skipped: SnapshotFileProblem[]) {
    this.#memory = memory;
    this.#wal = wal;
    this.#snapshotter = snapshotter;
    this.#skippedSnapshots = skipped;
  }

  /**
   * Opens (creating if needed) the storage in `dir`. Throws WalCorruptionError when the log
   * is damaged beyond a torn tail, or when it misses entries the loaded snapshot needs.
   */
  static async open(options: DiskLogStorageOptions): Promise<DiskLogStorage> {
    const walDir = join(options.dir, "wal");
    const snapDir = join(options.dir, "snap");
    await mkdir(walDir, { recursive: true });
    await mkdir(snapDir, { recursive: true });
    const snapshotter = new Snapshotter({
      dir: snapDir,
      logger: options.logger,
      ...(options.openSnapshotFile === undefined ? {} : { openFile: options.openSnapshotFile }),
    });
    const { snapshot, skipped } = await snapshotter.loadNewest();
    const afterIndex = snapshot?.metadata.index ?? 0;
    const { wal, state } = await WriteAheadLog.open({
      dir: walDir,
      logger: options.logger,
      afterIndex,
      ...(options.segmentBytesTarget === undefined ? {} : { segmentBytesTarget: options.segmentBytesTarget }),
      ...(options.openSegment === undefined ? {} : { openSegment: options.openSegment }),
    });
    const memory = new MemoryLogStorage();
    if (snapshot !== null) memory.applySnapshot(snapshot);
    memory.append(state.entries);
    // A crash between a snapshot's file and the hard state that follows it leaves an older
    // commit index on disk; the snapshot itself proves everything up to its index committed.
    memory.setHardState({ ...state.hardState, commit: Math.max(state.hardState.commit, afterIndex) });
    return new DiskLogStorage(memory, wal, snapshotter, skipped);
  }

  /** Fsyncs of the WAL since open(). */
  walSyncCount(): number {
    return this.#wal.syncCount();
  }

  /** Snapshot files that failed their checksum at open() and were passed over. */
  skippedSnapshots(): readonly SnapshotFileProblem[] {
    return this.#skippedSnapshots;
  }

  initialState(): { hardState: HardState; confState: ConfState } {
    return this.#memory.initialState();
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    return this.#memory.entries(lo, hi, maxBytes);
  }

  term(index: number): number {
    return this.#memory.term(index);
  }

  firstIndex(): number {
    return this.#memory.firstIndex();
  }

  lastIndex(): number {
    return this.#memory.lastIndex();
  }

  snapshot(): Snapshot {
    return this.#memory.snapshot();
  }

  /**
   * Makes a Ready durable with a single fsync: the snapshot file first (it has its own
   * fsync: a WAL marker must never point at a missing file), then WAL records for the
   * snapshot marker, entries and hard state. Memory is updated only after the fsync, so
   * the core never reads what a crash could still lose. Throws WalSyncError on I/O failure.
   */
  async save(batch: DiskLogStorageSave): Promise<void> {
    if (batch.snapshot !== null) {
      await this.#snapshotter.save(batch.snapshot);
      this.#wal.markSnapshot({ index: batch.snapshot.metadata.index, term: batch.snapshot.metadata.term }, { resetsLog: true });
    }
    this.#wal.append(batch.entries);
    if (batch.hardState !== null) this.#wal.setHardState(batch.hardState);
    // Records that need no fsync stay buffered and go out with the next one that does.
    if (this.#mustSync(batch)) await this.#sync();
    if (batch.snapshot !== null) this.#memory.applySnapshot(batch.snapshot);
    this.#memory.append(batch.entries);
    if (batch.hardState !== null) this.#memory.setHardState(batch.hardState);
  }

  /**
   * Saves a batch that needs no fsync (see #mustSync) at once and returns true; returns
   * false, having done nothing, when it needs one: then call save(). Half a leader's
   * Readies only move the commit index, and an async save() allocated a frame and promises
   * for each.
   */
  saveBuffered(batch: DiskLogStorageSave): boolean {
    if (this.#mustSync(batch)) return false;
    if (batch.hardState !== null) {
      this.#wal.setHardState(batch.hardState);
      this.#memory.setHardState(batch.hardState);
    }
    return true;
  }

  /**
   * Whether a save needs an fsync (etcd's MustSync): new entries, a snapshot, or a changed
   * term or vote. A commit index alone may be lost in a crash: it is never lower than what
   * the surviving log proves, and the leader tells it again.
   */
  #mustSync(batch: DiskLogStorageSave): boolean {
    if (batch.snapshot !== null || batch.entries.length > 0) return true;
    if (batch.hardState === null) return false;
    const previous = this.#memory.initialState().hardState;
    return batch.hardState.term !== previous.term || batch.hardState.vote !== previous.vote;
  }

  /**
   * The WAL allows one sync() at a time, and a snapshot being written in the background
   * (createSnapshot) syncs its marker while the driver's save() may be syncing a Ready: each
   * sync waits for the one before. A sync writes whatever is buffered when it starts, so
   * records buffered meanwhile go out with the next one and nothing is reordered.
   */
  #sync(): Promise<void> {
    const run = this.#syncTail.then(() => this.#wal.sync());
    // The chain only orders syncs: a failure reaches the caller through `run`, and the WAL
    // refuses every later sync itself (WalSyncError), so the next caller learns of it too.
    this.#syncTail = run.catch(() => undefined);
    return run;
  }

  /** Unlike save(), always fsyncs: the caller asked for this state to be durable. */
  async setHardState(state: HardState): Promise<void> {
    this.#wal.setHardState(state);
    await this.#sync();
    this.#memory.setHardState(state);
  }

  /** In memory only: see the class comment on how membership survives restarts. */
  setConfState(state: ConfState): void {
    this.#memory.setConfState(state);
  }

  async append(entries: readonly Entry[]): Promise<void> {
    await this.save({ snapshot: null, entries, hardState: null });
  }

  async applySnapshot(snapshot: Snapshot): Promise<void> {
    // Checked before touching the disk, so an out-of-date snapshot changes nothing.
    if (snapshot.metadata.index <= this.#memory.snapshot().metadata.index) {
      this.#memory.applySnapshot(snapshot);
    }
    await this.save({ snapshot, entries: [], hardState: null });
  }

  /**
   * Creates the snapshot in memory (synchronously, before the first await: the core may
   * send it to a lagging follower at once), then writes its file and WAL marker durably.
   * May run while save() calls go on (the driver writes snapshots in the background), but
   * not beside another createSnapshot() or a save() that carries a snapshot: they share the
   * snapshot directory.
   */
  async createSnapshot(index: number, confState: ConfState, data: Uint8Array): Promise<Snapshot> {
    const snapshot = this.#memory.createSnapshot(index, confState, data);
    // The marker must never reach the WAL before the file it names is durable.
    await this.#snapshotter.save(snapshot);
    this.#wal.markSnapshot({ index: snapshot.metadata.index, term: snapshot.metadata.term }, { resetsLog: false });
    await this.#sync();
    return snapshot;
  }

  /**
   * Releases entries up to `index` in memory and the WAL segments wholly before it. Call
   * only once a snapshot at or after `index` is durable (createSnapshot resolved): the
   * released segments are gone for good.
   */
  async compact(index: number): Promise<void> {
    this.#memory.compact(index);
    await this.#wal.releaseBefore(index);
  }

  /**
   * Writes and fsyncs what save() left buffered (a commit index alone): a clean stop then
   * keeps everything it knew committed, which --force-new-cluster relies on.
   */
  async flush(): Promise<void> {
    await this.#sync();
  }

  async close(): Promise<void> {
    await this.#wal.close();
  }
}
