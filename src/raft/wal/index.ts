export { crc32c } from "./crc32c.js";
export { DiskLogStorage } from "./disk-storage.js";
export type { DiskLogStorageOptions, DiskLogStorageSave } from "./disk-storage.js";
export {
  recordPayloadBytesMax,
  segmentBytesTargetDefault,
  WalCorruptionError,
  WalSyncError,
  WriteAheadLog,
} from "./wal.js";
export type { SegmentOpener, SnapshotMarker, WalOptions, WalRecoveredState } from "./wal.js";
