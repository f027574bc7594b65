import { InvalidArgumentError } from "../../common/errors.js";

/**
 * Pulls exact byte counts out of a stream of chunks. The tar reader needs fixed 512-byte
 * blocks and bounded bodies, while sources (files, gunzip, fetch bodies) deliver chunks of
 * any size.
 */
export class ByteReader {
  readonly #iterator: AsyncIterator<Uint8Array>;
  readonly #chunks: Buffer[] = [];
  #buffered = 0;
  #done = false;

  constructor(source: AsyncIterable<Uint8Array>) {
    this.#iterator = source[Symbol.asyncIterator]();
  }

  async #fill(bytes: number): Promise<void> {
    while (this.#buffered < bytes && !this.#done) {
      const result = await this.#iterator.next();
      if (result.done === true) {
        this.#done = true;
      } else if (result.value.length > 0) {
        const chunk = Buffer.isBuffer(result.value) ? result.value : Buffer.from(result.value);
        this.#chunks.push(chunk);
        this.#buffered += chunk.length;
      }
    }
  }

  #take(bytes: number): Buffer {
    const parts: Buffer[] = [];
    let needed = bytes;
    while (needed > 0) {
      const first = this.#chunks[0];
      if (first === undefined) break;
      if (first.length <= needed) {
        parts.push(first);
        this.#chunks.shift();
        needed -= first.length;
      } else {
        parts.push(first.subarray(0, needed));
        this.#chunks[0] = first.subarray(needed);
        needed = 0;
      }
    }
    const taken = bytes - needed;
    this.#buffered -= taken;
    return parts.length === 1 && parts[0] !== undefined ? parts[0] : Buffer.concat(parts, taken);
  }

  /** Exactly `bytes` bytes, or null at a clean end of stream; a short read is an error. */
  async readExactOrEnd(bytes: number): Promise<Buffer | null> {
    await this.#fill(bytes);
    if (this.#buffered === 0) return null;
    if (this.#buffered < bytes) {
      throw new InvalidArgumentError(`archive is truncated: wanted ${bytes} more bytes, found ${this.#buffered}`);
    }
    return this.#take(bytes);
  }

  async readExact(bytes: number): Promise<Buffer> {
    const block = await this.readExactOrEnd(bytes);
    if (block === null) throw new InvalidArgumentError(`archive is truncated: wanted ${bytes} more bytes, found 0`);
    return block;
  }

  /** Between 1 and `bytes` bytes; errors on end of stream. */
  async readSome(bytes: number): Promise<Buffer> {
    await this.#fill(1);
    if (this.#buffered === 0) throw new InvalidArgumentError(`archive is truncated: wanted ${bytes} more bytes`);
    const first = this.#chunks[0];
    const available = first === undefined ? 0 : first.length;
    return this.#take(Math.min(bytes, available));
  }

  async skip(bytes: number): Promise<void> {
    let remaining = bytes;
    while (remaining > 0) {
      const part = await this.readSome(remaining);
      remaining -= part.length;
    }
  }

  /** Stops the source early (closing files and sockets behind it). */
  async close(): Promise<void> {
    if (this.#done) return;
    this.#done = true;
    await this.#iterator.return?.();
  }

  /** Reads and discards everything left, returning the byte count. */
  async drain(): Promise<number> {
    let total = this.#buffered;
    this.#chunks.length = 0;
    this.#buffered = 0;
    while (!this.#done) {
      const result = await this.#iterator.next();
      if (result.done === true) this.#done = true;
      else total += result.value.length;
    }
    return total;
  }
}
