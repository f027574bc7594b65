export { checkMountTargetsUnique, parseTmpfsSpec, parseVolumeSpec, validateMountTarget, validateVolumeName } from "./mounts.js";
export type { MountRequest } from "./mounts.js";
export { createVolumeService, volumesMax } from "./volumes.js";
export type { Volume, VolumeService, VolumeUsage } from "./volumes.js";
