import type { SegmentOpener } from "../../../src/raft/wal/wal.js";
import { DatasyncProxy } from "./datasync-proxy.js";

/** Opens real segment files whose datasync() fails with EIO while `failing` is true. */
export class FailingFsync {
  failing = false;
  readonly #proxy = new DatasyncProxy((handle) =>
    this.failing ? Promise.reject(Object.assign(new Error("EIO: i/o error, fdatasync"), { code: "EIO" })) : handle.datasync(),
  );

  readonly open: SegmentOpener = this.#proxy.open;

  /** Closes every handle still open (the code under test may have stopped mid-way). */
  async close(): Promise<void> {
    await this.#proxy.closeAll();
  }
}
