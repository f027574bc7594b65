import type { Entry } from "./types.js";

/**
 * Bytes an entry is charged for in size limits: its payload plus a fixed allowance for
 * term, index and type, roughly what a framed record costs on the wire and on disk.
 */
export const entryOverheadBytes = 24;

export function entrySizeBytes(entry: Entry): number {
  return entry.data.length + entryOverheadBytes;
}

/**
 * The longest prefix of `entries` whose total size stays within `maxBytes`, but always at
 * least one entry so that an oversized entry still makes progress.
 */
export function limitEntriesSize<T extends Entry>(entries: readonly T[], maxBytes: number): T[] {
  if (entries.length === 0) return [];
  let total = 0;
  let count = 0;
  for (const entry of entries) {
    total += entrySizeBytes(entry);
    if (count > 0 && total > maxBytes) break;
    count += 1;
  }
  return entries.slice(0, count);
}

/** Payload bytes only: what the uncommitted-size limit counts (empty no-ops are free). */
export function payloadSizeBytes(entries: readonly Entry[]): number {
  let total = 0;
  for (const entry of entries) total += entry.data.length;
  return total;
}
