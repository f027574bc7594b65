/**
 * A broken invariant means the core's state is corrupt: continuing could commit or apply the
 * wrong entries, so the error must crash the process rather than be handled.
 */
export class InvariantError extends Error {
  override readonly name = "InvariantError";
}

/** Throws InvariantError when `condition` is false. One condition per call. */
export function invariant(condition: boolean, message: string): asserts condition {
  if (!condition) {
    throw new InvariantError(`raft invariant violated: ${message}`);
  }
}
