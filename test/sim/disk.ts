// A node's simulated disk. Writes go to a volatile buffer of records; fsync makes them
// durable. A crash keeps only what was synced, plus possibly a prefix of the unsynced
// records (a torn write loses the rest), like a WAL whose tail record is cut short.
import type { Entry, HardState, Snapshot } from "../../src/raft/core/types.js";
import { MemoryLogStorage } from "../../src/raft/storage/memory-storage.js";

export type DiskRecord =
  | { readonly type: "snapshot"; readonly snapshot: Snapshot }
  | { readonly type: "entry"; readonly entry: Entry }
  | { readonly type: "hard-state"; readonly hardState: HardState };

export class SimDisk {
  /** What survives a crash. */
  readonly durable = new MemoryLogStorage();
  #unsynced: DiskRecord[] = [];

  constructor(bootstrap: Snapshot | null) {
    if (bootstrap !== null) {
      this.durable.applySnapshot(bootstrap);
      this.durable.setHardState({ term: bootstrap.metadata.term, vote: 0, commit: bootstrap.metadata.index });
    }
  }

  write(record: DiskRecord): void {
    this.#unsynced.push(record);
  }

  fsync(): void {
    for (const record of this.#unsynced) applyRecord(this.durable, record);
    this.#unsynced = [];
  }

  /** Loses unsynced records, except a prefix of `keep` of them (a torn tail). */
  crash(keep: number): void {
    for (const record of this.#unsynced.slice(0, keep)) applyRecord(this.durable, record);
    this.#unsynced = [];
  }

  unsyncedCount(): number {
    return this.#unsynced.length;
  }

  /** Snapshots and compaction are written and synced at once (a file, then a rename). */
  saveSnapshot(snapshot: Snapshot, compactTo: number): void {
    this.fsync();
    if (snapshot.metadata.index > this.durable.snapshot().metadata.index) {
      // Durable storage may lag the runtime one by nothing here: entries are synced first.
      this.durable.createSnapshot(snapshot.metadata.index, snapshot.metadata.confState, snapshot.data);
    }
    if (compactTo > this.durable.firstIndex() - 1 && compactTo <= this.durable.snapshot().metadata.index) {
      this.durable.compact(compactTo);
    }
  }

  /** The storage a restarted node reads: the durable snapshot, entries and hard state. */
  recover(): { storage: MemoryLogStorage; snapshot: Snapshot } {
    const storage = new MemoryLogStorage();
    const snapshot = this.durable.snapshot();
    if (snapshot.metadata.index > 0) storage.applySnapshot(snapshot);
    const first = Math.max(this.durable.firstIndex(), snapshot.metadata.index + 1);
    const last = this.durable.lastIndex();
    if (last >= first) storage.append(this.durable.entries(first, last + 1, Infinity));
    storage.setHardState(this.durable.initialState().hardState);
    // Conf changes after the snapshot are in the log and are applied again on restart.
    storage.setConfState(snapshot.metadata.confState);
    return { storage, snapshot };
  }
}

function applyRecord(storage: MemoryLogStorage, record: DiskRecord): void {
  switch (record.type) {
    case "snapshot":
      if (record.snapshot.metadata.index > storage.snapshot().metadata.index) storage.applySnapshot(record.snapshot);
      return;
    case "entry":
      storage.append([record.entry]);
      return;
    case "hard-state":
      storage.setHardState(record.hardState);
      return;
  }
}
