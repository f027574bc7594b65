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

/**
 * Throws InvariantError; for checks on hot paths, written `if (broken) invariantFailed(...)`.
 * `invariant(condition, `...${value}`)` builds its template string on every call, even in
 * optimized code (measured: five times the garbage of the check itself), and the core runs
 * dozens of checks per proposal.
 */
export function invariantFailed(message: string): never {
  throw new InvariantError(`raft invariant violated: ${message}`);
}
