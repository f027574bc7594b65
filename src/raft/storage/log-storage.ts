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
