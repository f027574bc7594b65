import { open } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";

import type { SegmentOpener } from "../../../src/raft/wal/wal.js";

/** Opens real segment files whose datasync() fails with EIO while `failing` is true. */
export class FailingFsync {
  failing = false;
  readonly #handles: FileHandle[] = [];

  readonly open: SegmentOpener = async (path, flags) => {
    const handle = await open(path, flags);
    this.#handles.push(handle);
    return new Proxy(handle, {
      get: (target, property, receiver) => {
        if (property === "datasync" && this.failing) {
          return () => Promise.reject(Object.assign(new Error("EIO: i/o error, fdatasync"), { code: "EIO" }));
        }
        const value: unknown = Reflect.get(target, property, receiver);
        if (typeof value !== "function") return value;
        const bound: unknown = value.bind(target);
        return bound;
      },
    });
  };

  /** Closes every handle still open (the code under test may have stopped mid-way). */
  async close(): Promise<void> {
    for (const handle of this.#handles) await handle.close().catch(() => undefined);
  }
}
