/**
 * The closed set of error kinds shoal reports. Each kind has a stable `code`, maps 1:1 to an
 * HTTP status (REST API) and a gRPC status (cluster RPC), and carries a message written for
 * the user who has to fix the problem. Wrap lower-level failures with `{ cause }`.
 */

export const errorCodes = {
  invalid_argument: { http: 400, grpc: 3 },
  not_found: { http: 404, grpc: 5 },
  already_exists: { http: 409, grpc: 6 },
  conflict: { http: 409, grpc: 10 },
  failed_precondition: { http: 412, grpc: 9 },
  permission_denied: { http: 403, grpc: 7 },
  unauthenticated: { http: 401, grpc: 16 },
  unavailable: { http: 503, grpc: 14 },
  deadline_exceeded: { http: 504, grpc: 4 },
  cancelled: { http: 499, grpc: 1 },
  resource_exhausted: { http: 429, grpc: 8 },
  not_implemented: { http: 501, grpc: 12 },
  internal: { http: 500, grpc: 13 },
} as const;

export type ErrorCode = keyof typeof errorCodes;

export abstract class ShoalError extends Error {
  abstract readonly code: ErrorCode;

  get httpStatus(): number {
    return errorCodes[this.code].http;
  }

  get grpcStatus(): number {
    return errorCodes[this.code].grpc;
  }
}

export class InvalidArgumentError extends ShoalError {
  override readonly name = "InvalidArgumentError";
  readonly code = "invalid_argument";
}

export class NotFoundError extends ShoalError {
  override readonly name = "NotFoundError";
  readonly code = "not_found";
}

export class AlreadyExistsError extends ShoalError {
  override readonly name = "AlreadyExistsError";
  readonly code = "already_exists";
}

/** A write that lost an optimistic-concurrency race ("update out of sequence"). */
export class ConflictError extends ShoalError {
  override readonly name = "ConflictError";
  readonly code = "conflict";
}

export class FailedPreconditionError extends ShoalError {
  override readonly name = "FailedPreconditionError";
  readonly code = "failed_precondition";
}

export class PermissionDeniedError extends ShoalError {
  override readonly name = "PermissionDeniedError";
  readonly code = "permission_denied";
}

export class UnauthenticatedError extends ShoalError {
  override readonly name = "UnauthenticatedError";
  readonly code = "unauthenticated";
}

export class UnavailableError extends ShoalError {
  override readonly name = "UnavailableError";
  readonly code = "unavailable";
}

export class DeadlineExceededError extends ShoalError {
  override readonly name = "DeadlineExceededError";
  readonly code = "deadline_exceeded";
}

export class CancelledError extends ShoalError {
  override readonly name = "CancelledError";
  readonly code = "cancelled";
}

export class ResourceExhaustedError extends ShoalError {
  override readonly name = "ResourceExhaustedError";
  readonly code = "resource_exhausted";
}

export class NotImplementedError extends ShoalError {
  override readonly name = "NotImplementedError";
  readonly code = "not_implemented";
}

export class InternalError extends ShoalError {
  override readonly name = "InternalError";
  readonly code = "internal";
}

export function isShoalError(error: unknown): error is ShoalError {
  return error instanceof ShoalError;
}

/** The message of any thrown value, for logs and wrapped errors. */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}

/** The code of a failed system call ("ENOENT", "EEXIST", ...); undefined for any other error. */
export function systemErrorCode(error: unknown): string | undefined {
  return error instanceof Error && "code" in error && typeof error.code === "string" ? error.code : undefined;
}

/** Throws a CancelledError (with the signal's reason as cause) if the signal has fired. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted === true) {
    throw new CancelledError("operation cancelled", { cause: signal.reason });
  }
}

export function assertNever(value: never, what: string): never {
  throw new InternalError(`unhandled ${what}: ${JSON.stringify(value)}`);
}
