export {
  CompactedError,
  SnapshotOutOfDateError,
  SnapshotTemporarilyUnavailableError,
  UnavailableEntriesError,
} from "./log-storage.js";
export type { LogStorage, WritableLogStorage } from "./log-storage.js";
export { MemoryLogStorage } from "./memory-storage.js";
