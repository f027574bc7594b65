import { setImmediate as setImmediatePromise } from "node:timers/promises";

/**
 * Hands `parts`, in order, to `visit` in slices of at most `sliceBytes` bytes, one slice
 * per turn of the event loop, so that work over megabytes (a checksum, a copy) does not
 * hold up the timers and I/O waiting behind it. The parts must not change until the
 * promise settles.
 */
export async function visitInSlices(
  parts: readonly Uint8Array[],
  sliceBytes: number,
  visit: (slice: Uint8Array) => void,
): Promise<void> {
  let bytesThisTurn = 0;
  for (const part of parts) {
    for (let start = 0; start < part.length; ) {
      if (bytesThisTurn === sliceBytes) {
        await setImmediatePromise();
        bytesThisTurn = 0;
      }
      const end = Math.min(part.length, start + sliceBytes - bytesThisTurn);
      visit(part.subarray(start, end));
      bytesThisTurn += end - start;
      start = end;
    }
  }
}
