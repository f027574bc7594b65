import { entrySizeBytes } from "../core/entry-size.js";
import { invariantFailed } from "../core/invariant.js";
import { emptyHardState, type ConfState, type Entry, type HardState, type Snapshot } from "../core/types.js";
import {
  CompactedError,
  SnapshotOutOfDateError,
  UnavailableEntriesError,
  type LogStorage,
  type WritableLogStorage,
} from "./log-storage.js";

const emptySnapshot: Snapshot = {
  metadata: { index: 0, term: 0, confState: { voters: [], learners: [] } },
  data: new Uint8Array(0),
};

/**
 * A LogStorage held in memory (after etcd's MemoryStorage): the default for tests, and the
 * in-memory half of a WAL-backed storage. `#compactedIndex`/`#compactedTerm` describe the
 * last released entry, so term() still answers at firstIndex() - 1.
 */
export class MemoryLogStorage implements LogStorage, WritableLogStorage {
  #hardState: HardState = emptyHardState;
  #confState: ConfState = { voters: [], learners: [] };
  #snapshot: Snapshot = emptySnapshot;
  #compactedIndex = 0;
  #compactedTerm = 0;
  /** entries[i] has index #compactedIndex + 1 + i. */
  #entries: Entry[] = [];

  initialState(): { hardState: HardState; confState: ConfState } {
    return { hardState: this.#hardState, confState: this.#confState };
  }

  setHardState(state: HardState): void {
    this.#hardState = state;
  }

  setConfState(state: ConfState): void {
    this.#confState = state;
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    if (lo <= this.#compactedIndex) throw new CompactedError(`entry ${lo} is compacted (first index ${this.firstIndex()})`);
    if (hi > this.lastIndex() + 1) {
      throw new UnavailableEntriesError(`entries up to ${hi - 1} requested; the last index is ${this.lastIndex()}`);
    }
    if (lo > hi) invariantFailed(`invalid range [${lo}, ${hi})`);
    const offset = this.#compactedIndex + 1;
    // Find the size-limited end first so a large range is not copied only to be cut.
    let end = lo - offset;
    let total = 0;
    while (end < hi - offset) {
      const entry = this.#entries[end];
      if (entry === undefined) break;
      total += entrySizeBytes(entry);
      if (end > lo - offset && total > maxBytes) break;
      end += 1;
    }
    return this.#entries.slice(lo - offset, end);
  }

  term(index: number): number {
    if (index < this.#compactedIndex) throw new CompactedError(`term of ${index} is compacted (first index ${this.firstIndex()})`);
    if (index === this.#compactedIndex) return this.#compactedTerm;
    const entry = this.#entries[index - this.#compactedIndex - 1];
    if (entry === undefined) throw new UnavailableEntriesError(`term of ${index} requested; the last index is ${this.lastIndex()}`);
    return entry.term;
  }

  firstIndex(): number {
    return this.#compactedIndex + 1;
  }

  lastIndex(): number {
    return this.#compactedIndex + this.#entries.length;
  }

  snapshot(): Snapshot {
    return this.#snapshot;
  }

  append(entries: readonly Entry[]): void {
    const first = entries[0];
    if (first === undefined) return;
    entries.forEach((entry, offset) => {
      if (entry.index !== first.index + offset) invariantFailed(`appended entries are not contiguous at ${entry.index}`);
    });
    if (first.index > this.lastIndex() + 1) invariantFailed(`append at ${first.index} leaves a gap after ${this.lastIndex()}`);
    // Entries at or below the compaction point are already covered by the snapshot.
    const fresh = entries.filter((entry) => entry.index > this.#compactedIndex);
    const freshFirst = fresh[0];
    if (freshFirst === undefined) return;
    // Truncate and push in place: copying the whole log per append is quadratic.
    this.#entries.length = freshFirst.index - this.#compactedIndex - 1;
    for (const entry of fresh) this.#entries.push(entry);
  }

  applySnapshot(snapshot: Snapshot): void {
    const { index, term } = snapshot.metadata;
    if (index <= this.#snapshot.metadata.index) {
      throw new SnapshotOutOfDateError(`snapshot at ${index} is not newer than the stored one at ${this.#snapshot.metadata.index}`);
    }
    this.#snapshot = snapshot;
    this.#compactedIndex = index;
    this.#compactedTerm = term;
    this.#entries = [];
    this.#confState = snapshot.metadata.confState;
  }

  createSnapshot(index: number, confState: ConfState, data: Uint8Array): Snapshot {
    if (index <= this.#snapshot.metadata.index) {
      throw new SnapshotOutOfDateError(`snapshot at ${index} is not newer than the stored one at ${this.#snapshot.metadata.index}`);
    }
    if (index > this.lastIndex()) {
      throw new UnavailableEntriesError(`cannot snapshot at ${index}: the last index is ${this.lastIndex()}`);
    }
    this.#snapshot = { metadata: { index, term: this.term(index), confState }, data };
    return this.#snapshot;
  }

  compact(index: number): void {
    if (index <= this.#compactedIndex) throw new CompactedError(`entries up to ${index} are already compacted`);
    if (index > this.#snapshot.metadata.index) {
      throw new UnavailableEntriesError(
        `cannot compact to ${index}: take a snapshot at or after it first (latest snapshot ${this.#snapshot.metadata.index})`,
      );
    }
    const term = this.term(index);
    this.#entries = this.#entries.slice(index - this.#compactedIndex);
    this.#compactedIndex = index;
    this.#compactedTerm = term;
  }
}
