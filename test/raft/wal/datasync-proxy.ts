import { open } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";

import type { SegmentOpener } from "../../../src/raft/wal/wal.js";

/**
 * A SegmentOpener of real segment files whose datasync() is `datasync(real handle)`;
 * every other method is the real one. Keeps the handles so a test can close them all.
 */
export class DatasyncProxy {
  readonly #handles: FileHandle[] = [];

  constructor(private readonly datasync: (handle: FileHandle) => Promise<void>) {}

  readonly open: SegmentOpener = async (path, flags) => {
    const handle = await open(path, flags);
    this.#handles.push(handle);
    return new Proxy(handle, {
      get: (target, property, receiver) => {
        if (property === "datasync") return () => this.datasync(target);
        const value: unknown = Reflect.get(target, property, receiver);
        if (typeof value !== "function") return value;
        const bound: unknown = value.bind(target);
        return bound;
      },
    });
  };

  /** Closes every handle still open (the code under test may have stopped mid-way). */
  async closeAll(): Promise<void> {
    for (const handle of this.#handles) await handle.close().catch(() => undefined);
  }
}
