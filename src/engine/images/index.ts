export { archiveEntriesMax, loadImageArchive, saveImageArchive } from "./archive.js";
export type { ArchivedImage } from "./archive.js";
export { buildDemoArchive, buildDemoImages, demoApplets, demoBusyboxName, demoLayeredName } from "./demo.js";
export {
  checkLayerMediaType,
  configBytesMax,
  configListItemsMax,
  formatPlatform,
  imageLayersMax,
  indexManifestsMax,
  manifestBytesMax,
  mediaTypes,
  parseDescriptor,
  parseImageConfigDocument,
  parseManifestDocument,
  parsePlatformOption,
  selectPlatform,
} from "./manifest.js";
export type { Healthcheck, ImageConfig, ImageConfigDocument, ImageIndex, ImageManifest } from "./manifest.js";
export { layerDownloadsConcurrentMax, pullImage } from "./pull.js";
export type { PullContext, PullOptions, PullProgress } from "./pull.js";
export { openImageService } from "./service.js";
export type { ImageService, ImageServiceOptions, PushProgress, RemoveResult } from "./service.js";
export { ImageStore, computeChainIds, imageNamesMax, imagesMax } from "./store.js";
export type { ImageRecord } from "./store.js";
export { Unpacker, extractKeyPrefix } from "./unpack.js";
export type { UnpackEvent } from "./unpack.js";
