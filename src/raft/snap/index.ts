export {
  decodeSnapshotFile,
  encodeSnapshotFile,
  snapshotBytesMax,
  snapshotFileName,
  Snapshotter,
  snapshotsKeptMax,
} from "./snapshotter.js";
export type { SnapshotFileProblem } from "./snapshotter.js";
