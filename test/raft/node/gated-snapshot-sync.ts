import { open } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";

import type { SnapshotFileOpener } from "../../../src/raft/snap/snapshotter.js";

/**
 * Opens real snapshot files whose fsync waits, while the gate is closed, until the test
 * opens it: a snapshot write as slow as the test wants.
 */
export class GatedSnapshotSync {
  #closed = false;
  readonly #waiting: (() => void)[] = [];
  readonly #handles: FileHandle[] = [];

  readonly open: SnapshotFileOpener = async (path, flags) => {
    const handle = await open(path, flags);
    this.#handles.push(handle);
    return new Proxy(handle, {
      get: (target, property, receiver) => {
        if (property === "sync") return () => this.#sync(target);
        const value: unknown = Reflect.get(target, property, receiver);
        if (typeof value !== "function") return value;
        const bound: unknown = value.bind(target);
        return bound;
      },
    });
  };

  async #sync(handle: FileHandle): Promise<void> {
    if (this.#closed) await new Promise<void>((resolve) => this.#waiting.push(resolve));
    await handle.sync();
  }

  /** Snapshot fsyncs from now on wait for openGate(). */
  close(): void {
    this.#closed = true;
  }

  /** How many snapshot fsyncs are held at the gate. */
  held(): number {
    return this.#waiting.length;
  }

  openGate(): void {
    this.#closed = false;
    for (const release of this.#waiting.splice(0)) release();
  }

  /** Opens the gate and closes every handle still open (the node may have stopped mid-way). */
  async dispose(): Promise<void> {
    this.openGate();
    for (const handle of this.#handles) await handle.close().catch(() => undefined);
  }
}
