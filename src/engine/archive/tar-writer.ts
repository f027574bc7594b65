import { InvalidArgumentError } from "../../common/errors.js";
import { tarBlockBytes, type TarEntryType } from "./tar-reader.js";

const ustarNameBytesMax = 100;
const ustarOctal8Max = 0o7777777;
const ustarOctal12Max = 0o77777777777;

/** What a caller writes; unset numbers default to 0 and mode to 0o644 (0o755 for directories). */
export interface TarWriteEntry {
  readonly path: string;
  readonly type: TarEntryType;
  readonly mode?: number;
  readonly uid?: number;
  readonly gid?: number;
  /** Regular files only: the exact byte count of the body. */
  readonly size?: number;
  /** Seconds since the epoch. */
  readonly mtime?: number;
  readonly linkpath?: string;
  readonly devmajor?: number;
  readonly devminor?: number;
  /** Extra pax records (e.g. "SCHILY.xattr.user.name"); they override the ustar fields. */
  readonly pax?: Readonly<Record<string, string>>;
}

const typeFlags: Record<TarEntryType, string> = {
  file: "0",
  hardlink: "1",
  symlink: "2",
  "char-device": "3",
  "block-device": "4",
  directory: "5",
  fifo: "6",
};

function writeString(block: Buffer, start: number, length: number, value: string): void {
  block.write(value, start, length, "utf8");
}

function writeOctal(block: Buffer, start: number, length: number, value: number): void {
  block.write(`${value.toString(8).padStart(length - 1, "0")}\0`, start, length, "latin1");
}

function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  // The length prefix counts its own digits, so grow it until it is stable.
  let length = Buffer.byteLength(body) + 1;
  while (String(length).length + Buffer.byteLength(body) !== length) length += 1;
  return `${length}${body}`;
}

function buildBlock(fields: {
  name: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  flag: string;
  linkname: string;
  devmajor: number;
  devminor: number;
}): Buffer {
  const block = Buffer.alloc(tarBlockBytes);
  writeString(block, 0, 100, fields.name);
  writeOctal(block, 100, 8, fields.mode);
  writeOctal(block, 108, 8, fields.uid);
  writeOctal(block, 116, 8, fields.gid);
  writeOctal(block, 124, 12, fields.size);
  writeOctal(block, 136, 12, fields.mtime);
  block.write(fields.flag, 156, 1, "latin1");
  writeString(block, 157, 100, fields.linkname);
  block.write("ustar\x0000", 257, 8, "latin1");
  writeOctal(block, 329, 8, fields.devmajor);
  writeOctal(block, 337, 8, fields.devminor);
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, 8, "latin1");
  return block;
}

/** The header block(s) of one entry: a pax extended header first when ustar cannot hold a field. */
export function encodeTarHeader(entry: TarWriteEntry): Buffer {
  const size = entry.type === "file" ? (entry.size ?? 0) : 0;
  const mode = entry.mode ?? (entry.type === "directory" ? 0o755 : 0o644);
  const uid = entry.uid ?? 0;
  const gid = entry.gid ?? 0;
  const mtime = Math.floor(entry.mtime ?? 0);
  const linkpath = entry.linkpath ?? "";
  if (!Number.isSafeInteger(size) || size < 0) throw new InvalidArgumentError(`tar entry "${entry.path}" has an invalid size`);
  const records: string[] = [];
  const path = entry.type === "directory" && !entry.path.endsWith("/") ? `${entry.path}/` : entry.path;
  if (Buffer.byteLength(path) > ustarNameBytesMax) records.push(paxRecord("path", path));
  if (Buffer.byteLength(linkpath) > ustarNameBytesMax) records.push(paxRecord("linkpath", linkpath));
  if (size > ustarOctal12Max) records.push(paxRecord("size", String(size)));
  if (uid > ustarOctal8Max) records.push(paxRecord("uid", String(uid)));
  if (gid > ustarOctal8Max) records.push(paxRecord("gid", String(gid)));
  for (const [key, value] of Object.entries(entry.pax ?? {})) records.push(paxRecord(key, value));
  const main = buildBlock({
    name: path.slice(0, ustarNameBytesMax),
    mode: mode & 0o7777,
    uid: Math.min(uid, ustarOctal8Max),
    gid: Math.min(gid, ustarOctal8Max),
    size: Math.min(size, ustarOctal12Max),
    mtime,
    flag: typeFlags[entry.type],
    linkname: linkpath.slice(0, ustarNameBytesMax),
    devmajor: entry.devmajor ?? 0,
    devminor: entry.devminor ?? 0,
  });
  if (records.length === 0) return main;
  const paxBody = Buffer.from(records.join(""), "utf8");
  const paxHeader = buildBlock({
    name: `PaxHeaders/${path}`.slice(0, ustarNameBytesMax),
    mode: 0o644,
    uid: 0,
    gid: 0,
    size: paxBody.length,
    mtime,
    flag: "x",
    linkname: "",
    devmajor: 0,
    devminor: 0,
  });
  return Buffer.concat([paxHeader, paxBody, tarPadding(paxBody.length), main]);
}

/** Zero bytes that round a body of `size` bytes up to a whole block. */
export function tarPadding(size: number): Buffer {
  const remainder = size % tarBlockBytes;
  return Buffer.alloc(remainder === 0 ? 0 : tarBlockBytes - remainder);
}

/** Two zero blocks end an archive. */
export function tarEnd(): Buffer {
  return Buffer.alloc(tarBlockBytes * 2);
}

/**
 * Writes a tar stream into `sink`, which applies backpressure by returning a promise. The
 * writer checks that each file body has exactly the declared size, because a mismatch would
 * shift every later header.
 */
export class TarWriter {
  readonly #sink: (chunk: Buffer) => Promise<void>;
  #finished = false;

  constructor(sink: (chunk: Buffer) => Promise<void>) {
    this.#sink = sink;
  }

  async add(entry: TarWriteEntry, body?: Buffer | AsyncIterable<Uint8Array>): Promise<void> {
    if (this.#finished) throw new InvalidArgumentError("tar writer already finished");
    const declared = entry.type === "file" ? (entry.size ?? (Buffer.isBuffer(body) ? body.length : 0)) : 0;
    await this.#sink(encodeTarHeader({ ...entry, size: declared }));
    if (body === undefined) {
      if (declared !== 0) throw new InvalidArgumentError(`tar entry "${entry.path}" declares ${declared} bytes but has no body`);
      return;
    }
    let written = 0;
    const chunks: AsyncIterable<Uint8Array> | Buffer[] = Buffer.isBuffer(body) ? [body] : body;
    for await (const chunk of chunks) {
      written += chunk.length;
      if (written > declared) throw new InvalidArgumentError(`tar entry "${entry.path}" body is longer than ${declared} bytes`);
      await this.#sink(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
    }
    if (written !== declared) {
      throw new InvalidArgumentError(`tar entry "${entry.path}" body has ${written} bytes, declared ${declared}`);
    }
    const padding = tarPadding(declared);
    if (padding.length > 0) await this.#sink(padding);
  }

  async finish(): Promise<void> {
    if (this.#finished) return;
    this.#finished = true;
    await this.#sink(tarEnd());
  }
}

/** Builds a whole archive in memory (small layers and test fixtures). */
export async function buildTar(entries: readonly { entry: TarWriteEntry; body?: Buffer }[]): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const writer = new TarWriter((chunk) => {
    chunks.push(chunk);
    return Promise.resolve();
  });
  for (const { entry, body } of entries) await writer.add(entry, body);
  await writer.finish();
  return Buffer.concat(chunks);
}
