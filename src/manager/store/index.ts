export {
  codecFormatVersion,
  decodeStoreChanges,
  decodeStoreSnapshot,
  encodeStoreChanges,
  entryChangesMax,
  storeSnapshotPieces,
  transactionChangesMax,
} from "./codec.js";
export type { StoreSnapshotContent } from "./codec.js";
export { MemoryStore, restoreObjectsPerTurn, snapshotObjectsPerTurn } from "./memory-store.js";
export type { Batch, MemoryStoreOptions, WatchOptions } from "./memory-store.js";
export { changeActions, objectKinds } from "./types.js";
export type {
  ChangeAction,
  CommonQuery,
  NewObject,
  ObjectByKind,
  ObjectKind,
  Proposer,
  QueryFor,
  ReadTx,
  StoreChange,
  StoreChangeOf,
  StoreEvent,
  StoreObject,
  StoreObjectEvent,
  StoreObjectEventOf,
  TaskQuery,
  WriteTx,
} from "./types.js";
export { watchQueueEventsMax } from "./watch.js";
