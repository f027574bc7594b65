import { open, rename, writeFile } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";

/**
 * Writes `data` to `path` through a temporary file and a rename, so a crash leaves the old
 * file or the new one, never a mix. With `durable` (the default) the data is fsynced before
 * the rename; state that is rebuilt on start anyway may skip that cost. `mode` is set
 * exactly (the umask is ignored).
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, options: { mode?: number; durable?: boolean } = {}): Promise<void> {
  const mode = options.mode ?? 0o600;
  const temporary = `${path}.tmp`;
  const handle = await open(temporary, "w", mode);
  try {
    await handle.chmod(mode);
    await handle.writeFile(data);
    if (options.durable ?? true) await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temporary, path);
}

/**
 * Replaces `path` through a temporary file and a rename, like writeFileAtomic, but neither
 * fsynced nor chmodded (the file gets `mode` less the umask): for state rebuilt on start
 * anyway, in a folder only the daemon reads, written often enough that the two calls count.
 */
export async function replaceFile(path: string, data: string, mode = 0o600): Promise<void> {
  const temporary = `${path}.tmp`;
  await writeFile(temporary, data, { mode });
  await rename(temporary, path);
}

/** Makes renames and creations inside the directory `path` durable. */
export async function syncDirectory(path: string): Promise<void> {
  const handle = await open(path, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Writes all of `bytes` at the file's current position: one write may take only part of them. */
export async function writeAll(handle: FileHandle, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) {
    const { bytesWritten } = await handle.write(bytes, offset, bytes.length - offset);
    offset += bytesWritten;
  }
}
