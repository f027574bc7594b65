import type { ConfState, Entry, HardState, Snapshot } from "../core/types.js";

/**
 * The raft core's read access to the durable log, after etcd's Storage interface. The
 * driver writes to it (after persisting) and the core only reads. Every method is
 * synchronous: implementations keep what the core reads in memory and persist on the side.
 */
export interface LogStorage {
  /** The hard state and membership the node restarts with. */
  initialState(): { hardState: HardState; confState: ConfState };
  /**
   * Entries in [lo, hi), at least one if any exist in range, further ones only while their
   * total encoded size stays within maxBytes. Throws CompactedError when lo <= the
   * snapshot index, UnavailableEntriesError when hi > lastIndex() + 1.
   */
  entries(lo: number, hi: number, maxBytes: number): Entry[];
  /**
   * The term of the entry at index, for index in [firstIndex() - 1, lastIndex()]; the term
   * at firstIndex() - 1 is the snapshot's. Throws CompactedError below that range and
   * UnavailableEntriesError above it.
   */
  term(index: number): number;
  /** The index of the first entry that may be read with entries(): snapshot index + 1. */
  firstIndex(): number;
  /** The index of the last entry (the snapshot index when the log holds none). */
  lastIndex(): number;
  /** The most recent snapshot. Throws SnapshotTemporarilyUnavailableError while one is being made. */
  snapshot(): Snapshot;
}

/** The requested index is older than the latest snapshot: those entries were released. */
export class CompactedError extends Error {
  override readonly name = "CompactedError";
}

/** The requested index is beyond the last entry. */
export class UnavailableEntriesError extends Error {
  override readonly name = "UnavailableEntriesError";
}

export class SnapshotTemporarilyUnavailableError extends Error {
  override readonly name = "SnapshotTemporarilyUnavailableError";
}

/** A snapshot older than (or as old as) the one storage already holds. */
export class SnapshotOutOfDateError extends Error {
  override readonly name = "SnapshotOutOfDateError";
}

/**
 * The write side of a log storage, used by the driver (never by the core). Methods may be
 * synchronous or return a promise (a WAL-backed storage fsyncs); callers await either way.
 */
export interface WritableLogStorage {
  /** Records the hard state to report from initialState(). */
  setHardState(state: HardState): void | Promise<void>;
  /** Records the membership to report from initialState() (the driver applies conf changes). */
  setConfState(state: ConfState): void | Promise<void>;
  /**
   * Appends entries, replacing every stored entry from entries[0].index on. Entries must be
   * contiguous and entries[0].index <= lastIndex() + 1; entries at or below the compaction
   * point are skipped. Violations throw InvariantError (a driver bug).
   */
  append(entries: readonly Entry[]): void | Promise<void>;
  /**
   * Replaces the whole log with `snapshot` (a follower catching up), and the membership
   * initialState() reports with the snapshot's. Throws SnapshotOutOfDateError when
   * snapshot.metadata.index <= the current snapshot's index.
   */
  applySnapshot(snapshot: Snapshot): void | Promise<void>;
  /**
   * Makes a snapshot of the state machine as of `index` (which must be applied, hence
   * <= lastIndex()). Throws SnapshotOutOfDateError when index <= the current snapshot's
   * index and UnavailableEntriesError when index > lastIndex(). Does not compact.
   */
  createSnapshot(index: number, confState: ConfState, data: Uint8Array): Snapshot | Promise<Snapshot>;
  /**
   * Releases entries up to and including `index`, which must be <= the latest snapshot's
   * index (so a lagging follower can still be served). Throws CompactedError when index <
   * firstIndex() (already released) and UnavailableEntriesError when index > the
   * snapshot's index.
   */
  compact(index: number): void | Promise<void>;
}
