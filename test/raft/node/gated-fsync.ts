import type { SegmentOpener } from "../../../src/raft/wal/wal.js";
import { DatasyncProxy } from "../wal/datasync-proxy.js";

/**
 * Opens real segment files whose datasync() waits, while the gate is closed, until the
 * test lets it through: a disk as slow as the test wants, at the moment it wants.
 */
export class GatedFsync {
  #closed = false;
  readonly #waiting: (() => void)[] = [];
  readonly #proxy = new DatasyncProxy(async (handle) => {
    if (this.#closed) await new Promise<void>((resolve) => this.#waiting.push(resolve));
    await handle.datasync();
  });

  readonly open: SegmentOpener = this.#proxy.open;

  /** fsyncs from now on wait for letOneThrough() or open(). */
  close(): void {
    this.#closed = true;
  }

  /** How many fsyncs are held at the gate. */
  held(): number {
    return this.#waiting.length;
  }

  letOneThrough(): void {
    this.#waiting.shift()?.();
  }

  /** Lets every held fsync through and stops holding new ones. */
  openGate(): void {
    this.#closed = false;
    for (const release of this.#waiting.splice(0)) release();
  }

  /** Closes every handle still open (the code under test may have stopped mid-way). */
  async dispose(): Promise<void> {
    this.openGate();
    await this.#proxy.closeAll();
  }
}
