export { ByteReader } from "./byte-reader.js";
export {
  readTar,
  tarBlockBytes,
  tarHeadersMaxDefault,
  tarPaxHeaderBytesMax,
  tarPathBytesMax,
  tarPaxRecordsMax,
} from "./tar-reader.js";
export type { TarEntry, TarEntryType, TarHeader, TarReadOptions } from "./tar-reader.js";
export { TarWriter, buildTar, encodeTarHeader, tarEnd, tarPadding } from "./tar-writer.js";
export type { TarWriteEntry } from "./tar-writer.js";
