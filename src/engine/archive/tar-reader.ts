import { InvalidArgumentError, ResourceExhaustedError } from "../../common/errors.js";
import { ByteReader } from "./byte-reader.js";

export const tarBlockBytes = 512;
/** Headers of any kind (entries plus pax and GNU meta headers) read from one archive. */
export const tarHeadersMaxDefault = 1_000_000;
/** A pax extended header body; real ones hold a long path and a few xattrs. */
export const tarPaxHeaderBytesMax = 1024 * 1024;
/** Linux PATH_MAX. */
export const tarPathBytesMax = 4096;
/** Pax records in one extended header. */
export const tarPaxRecordsMax = 1024;

export type TarEntryType = "file" | "hardlink" | "symlink" | "char-device" | "block-device" | "directory" | "fifo";

/** One archive member as the archive describes it: nothing here has been checked against a filesystem. */
export interface TarHeader {
  readonly path: string;
  readonly type: TarEntryType;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  /** Seconds since the epoch (pax headers may carry a fraction). */
  readonly mtime: number;
  readonly linkpath: string;
  readonly uname: string;
  readonly gname: string;
  readonly devmajor: number;
  readonly devminor: number;
  /** From pax `SCHILY.xattr.NAME` records. */
  readonly xattrs: ReadonlyMap<string, Buffer>;
}

export interface TarEntry extends TarHeader {
  /**
   * The entry's `size` bytes. Read it at most once, before asking for the next entry;
   * whatever is left unread is skipped.
   */
  body(): AsyncGenerator<Buffer>;
}

export interface TarReadOptions {
  /** Cap on headers of every kind; default tarHeadersMaxDefault. */
  readonly headersMax?: number;
}

interface PaxValues {
  path?: string;
  linkpath?: string;
  size?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  uname?: string;
  gname?: string;
  xattrs: Map<string, Buffer>;
}

function readString(block: Buffer, start: number, length: number): string {
  const field = block.subarray(start, start + length);
  const end = field.indexOf(0);
  return field.subarray(0, end === -1 ? field.length : end).toString("utf8");
}

function readNumber(block: Buffer, start: number, length: number, what: string): number {
  const field = block.subarray(start, start + length);
  const first = field[0] ?? 0;
  if ((first & 0x80) !== 0) {
    // GNU base-256: big-endian two's complement; a set sign bit (0xff lead) is negative.
    if (first === 0xff) throw new InvalidArgumentError(`tar header has a negative ${what}`);
    let value = first & 0x7f;
    for (let index = 1; index < field.length; index += 1) {
      value = value * 256 + (field[index] ?? 0);
      if (!Number.isSafeInteger(value)) throw new InvalidArgumentError(`tar header ${what} is too large`);
    }
    return value;
  }
  const text = field.toString("latin1").replace(/[\0 ]+$/u, "").replace(/^ +/u, "");
  if (text === "") return 0;
  if (!/^[0-7]+$/u.test(text)) throw new InvalidArgumentError(`tar header ${what} "${text}" is not an octal number`);
  return Number.parseInt(text, 8);
}

function checksumMatches(block: Buffer): boolean {
  const stored = readNumber(block, 148, 8, "checksum");
  let unsigned = 0;
  let signed = 0;
  for (let index = 0; index < tarBlockBytes; index += 1) {
    const byte = index >= 148 && index < 156 ? 0x20 : (block[index] ?? 0);
    unsigned += byte;
    signed += byte > 127 ? byte - 256 : byte;
  }
  return stored === unsigned || stored === signed;
}

function parseDecimal(value: string, key: string): number {
  if (!/^\d+(\.\d+)?$/u.test(value)) throw new InvalidArgumentError(`pax record ${key}="${value}" is not a number`);
  const parsed = Number(value);
  if (!Number.isFinite(parsed) || parsed > Number.MAX_SAFE_INTEGER) {
    throw new InvalidArgumentError(`pax record ${key} is out of range`);
  }
  return key === "mtime" ? parsed : Math.floor(parsed);
}

function applyPaxRecord(values: PaxValues, key: string, value: Buffer): void {
  const text = value.toString("utf8");
  switch (key) {
    case "path":
    case "linkpath":
    case "uname":
    case "gname":
      values[key] = text;
      return;
    case "size":
    case "uid":
    case "gid":
    case "mtime":
      values[key] = parseDecimal(text, key);
      return;
    default:
      if (key.startsWith("SCHILY.xattr.")) values.xattrs.set(key.slice("SCHILY.xattr.".length), value);
  }
}

/** Parses "LEN KEY=VALUE\n" records; LEN counts the whole record. */
function parsePaxRecords(data: Buffer, into: PaxValues): void {
  let offset = 0;
  let records = 0;
  while (offset < data.length) {
    if (data[offset] === 0) break;
    records += 1;
    if (records > tarPaxRecordsMax) throw new ResourceExhaustedError(`pax header has more than ${tarPaxRecordsMax} records`);
    const space = data.indexOf(0x20, offset);
    if (space === -1 || space - offset > 12) throw new InvalidArgumentError("pax header record has no length");
    const lengthText = data.subarray(offset, space).toString("latin1");
    if (!/^\d+$/u.test(lengthText)) throw new InvalidArgumentError(`pax record length "${lengthText}" is not a number`);
    const length = Number(lengthText);
    const end = offset + length;
    if (length <= space - offset + 1 || end > data.length || data[end - 1] !== 0x0a) {
      throw new InvalidArgumentError("pax header record length does not match its content");
    }
    const record = data.subarray(space + 1, end - 1);
    const equals = record.indexOf(0x3d);
    if (equals <= 0) throw new InvalidArgumentError("pax header record has no key");
    applyPaxRecord(into, record.subarray(0, equals).toString("utf8"), record.subarray(equals + 1));
    offset = end;
  }
}

function entryType(flag: string, name: string): TarEntryType | "pax" | "global-pax" | "gnu-longname" | "gnu-longlink" {
  switch (flag) {
    case "0":
    case "\0":
    case "7":
      return "file";
    case "1":
      return "hardlink";
    case "2":
      return "symlink";
    case "3":
      return "char-device";
    case "4":
      return "block-device";
    case "5":
      return "directory";
    case "6":
      return "fifo";
    case "x":
      return "pax";
    case "g":
      return "global-pax";
    case "L":
      return "gnu-longname";
    case "K":
      return "gnu-longlink";
    default:
      throw new InvalidArgumentError(`unsupported tar entry type "${flag}" for "${name}"`);
  }
}

function checkPathBytes(path: string, what: string): string {
  if (Buffer.byteLength(path) > tarPathBytesMax) {
    throw new ResourceExhaustedError(`tar ${what} is longer than ${tarPathBytesMax} bytes`);
  }
  if (path.includes("\0")) throw new InvalidArgumentError(`tar ${what} contains a NUL byte`);
  return path;
}

function paddedSize(size: number): number {
  return Math.ceil(size / tarBlockBytes) * tarBlockBytes;
}

async function readMetaBody(reader: ByteReader, size: number, limit: number, what: string): Promise<Buffer> {
  if (size > limit) throw new ResourceExhaustedError(`tar ${what} of ${size} bytes exceeds the ${limit}-byte limit`);
  const data = await reader.readExact(paddedSize(size));
  return data.subarray(0, size);
}

interface PendingMeta {
  pax: PaxValues | undefined;
  global: PaxValues;
  longName: string | undefined;
  longLink: string | undefined;
}

function buildHeader(block: Buffer, meta: PendingMeta, type: TarEntryType): TarHeader {
  const magic = block.subarray(257, 263).toString("latin1");
  const name = readString(block, 0, 100);
  // Only POSIX ustar has a prefix field; GNU keeps other data at that offset.
  const prefix = magic === "ustar\0" ? readString(block, 345, 155) : "";
  const pax = meta.pax;
  const global = meta.global;
  const path = pax?.path ?? meta.longName ?? global.path ?? (prefix === "" ? name : `${prefix}/${name}`);
  const linkpath = pax?.linkpath ?? meta.longLink ?? global.linkpath ?? readString(block, 157, 100);
  const xattrs = new Map([...global.xattrs, ...(pax?.xattrs ?? [])]);
  return {
    path: checkPathBytes(path, "path"),
    // Old tars mark directories only by a trailing slash; judge the full (pax) path.
    type: type === "file" && path.endsWith("/") ? "directory" : type,
    mode: readNumber(block, 100, 8, "mode") & 0o7777,
    uid: pax?.uid ?? global.uid ?? readNumber(block, 108, 8, "uid"),
    gid: pax?.gid ?? global.gid ?? readNumber(block, 116, 8, "gid"),
    size: pax?.size ?? global.size ?? readNumber(block, 124, 12, "size"),
    mtime: pax?.mtime ?? global.mtime ?? readNumber(block, 136, 12, "mtime"),
    linkpath: checkPathBytes(linkpath, "link target"),
    uname: pax?.uname ?? global.uname ?? readString(block, 265, 32),
    gname: pax?.gname ?? global.gname ?? readString(block, 297, 32),
    devmajor: readNumber(block, 329, 8, "device major"),
    devminor: readNumber(block, 337, 8, "device minor"),
    xattrs,
  };
}

/**
 * Streams the entries of a tar archive (ustar, pax, GNU long names). The archive is hostile
 * input: every count and size is capped, and paths are returned as written so that the caller
 * decides how to confine them. After the end-of-archive marker the rest of the source is read
 * and discarded so that a digest computed over the source covers all of it.
 */
export async function* readTar(source: AsyncIterable<Uint8Array>, options: TarReadOptions = {}): AsyncGenerator<TarEntry> {
  const headersMax = options.headersMax ?? tarHeadersMaxDefault;
  const reader = new ByteReader(source);
  const meta: PendingMeta = { pax: undefined, global: { xattrs: new Map() }, longName: undefined, longLink: undefined };
  try {
    yield* readTarEntries(reader, meta, headersMax);
  } finally {
    await reader.close();
  }
}

async function* readTarEntries(reader: ByteReader, meta: PendingMeta, headersMax: number): AsyncGenerator<TarEntry> {
  let headers = 0;
  for (;;) {
    const block = await reader.readExactOrEnd(tarBlockBytes);
    if (block === null) return;
    if (block.every((byte) => byte === 0)) {
      await reader.drain();
      return;
    }
    headers += 1;
    if (headers > headersMax) throw new ResourceExhaustedError(`archive has more than ${headersMax} entries`);
    if (!checksumMatches(block)) throw new InvalidArgumentError(`tar header ${headers} has a bad checksum: not a tar archive or corrupted`);
    const flag = String.fromCharCode(block[156] ?? 0);
    const kind = entryType(flag, readString(block, 0, 100));
    const size = readNumber(block, 124, 12, "size");
    switch (kind) {
      case "pax": {
        meta.pax = { xattrs: new Map() };
        parsePaxRecords(await readMetaBody(reader, size, tarPaxHeaderBytesMax, "pax header"), meta.pax);
        continue;
      }
      case "global-pax":
        parsePaxRecords(await readMetaBody(reader, size, tarPaxHeaderBytesMax, "global pax header"), meta.global);
        continue;
      case "gnu-longname":
        meta.longName = readString(await readMetaBody(reader, size, tarPathBytesMax + 1, "GNU long name"), 0, size);
        continue;
      case "gnu-longlink":
        meta.longLink = readString(await readMetaBody(reader, size, tarPathBytesMax + 1, "GNU long link"), 0, size);
        continue;
      default:
        break;
    }
    const header = buildHeader(block, meta, kind);
    meta.pax = undefined;
    meta.longName = undefined;
    meta.longLink = undefined;
    // Only regular-file headers carry data (a hardlink's size is informational). Judge by the
    // type flag, not the trailing-slash rule, so that the stream stays in step with the writer.
    const dataBytes = kind === "file" ? header.size : 0;
    let remaining = dataBytes;
    let bodyTaken = false;
    const body = async function* (): AsyncGenerator<Buffer> {
      if (bodyTaken) throw new InvalidArgumentError(`body of "${header.path}" read twice`);
      bodyTaken = true;
      while (remaining > 0) {
        const part = await reader.readSome(remaining);
        remaining -= part.length;
        yield part;
      }
    };
    yield { ...header, body };
    await reader.skip(remaining + (paddedSize(dataBytes) - dataBytes));
  }
}
