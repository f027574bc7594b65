export {
  decodeSnapshotFile,
  encodeSnapshotFile,
  snapshotBytesMax,
  snapshotFileName,
  Snapshotter,
  snapshotsKeptMax,
} from "./snapshotter.js";
export type { SnapshotFileOpener, SnapshotFileProblem } from "./snapshotter.js";
