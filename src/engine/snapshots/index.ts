export {
  applyLayer,
  confineLayerPath,
  layerEntriesMaxDefault,
  layerNameBytesMax,
  layerUncompressedBytesMaxDefault,
} from "./apply.js";
export type { AppliedLayer, ApplyLayerOptions, LayerLimits } from "./apply.js";
export { openOverlaySnapshotter, overlayOptionsBytesMax, snapshotKeyBytesMax, snapshotsMax } from "./snapshotter.js";
export type { LayerSnapshotter, Mount, SnapshotInfo, SnapshotKind, SnapshotUsage, Snapshotter } from "./snapshotter.js";
export { runTool } from "./tools.js";
