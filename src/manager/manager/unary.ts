import { addAbortListener } from "node:events";

import { status, type ClientUnaryCall, type ServiceError } from "@grpc/grpc-js";

import {
  AlreadyExistsError,
  CancelledError,
  ConflictError,
  DeadlineExceededError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  ResourceExhaustedError,
  UnauthenticatedError,
  UnavailableError,
  throwIfAborted,
} from "../../common/errors.js";
import type { Clock } from "../../common/clock.js";

/** How long one call between managers may take. */
export const managerCallTimeoutMs = 10_000;

/** A peer's refusal as the matching error kind, so callers can tell "not the leader" from "not allowed". */
export function errorFromServiceError(error: ServiceError, what: string): Error {
  const message = `${what}: ${error.details || error.message}`;
  const options = { cause: error };
  switch (error.code) {
    case status.INVALID_ARGUMENT:
      return new InvalidArgumentError(message, options);
    case status.NOT_FOUND:
      return new NotFoundError(message, options);
    case status.ALREADY_EXISTS:
      return new AlreadyExistsError(message, options);
    case status.ABORTED:
      return new ConflictError(message, options);
    case status.FAILED_PRECONDITION:
      return new FailedPreconditionError(message, options);
    case status.PERMISSION_DENIED:
      return new PermissionDeniedError(message, options);
    case status.UNAUTHENTICATED:
      return new UnauthenticatedError(message, options);
    case status.RESOURCE_EXHAUSTED:
      return new ResourceExhaustedError(message, options);
    case status.DEADLINE_EXCEEDED:
      return new DeadlineExceededError(message, options);
    default:
      return new UnavailableError(message, options);
  }
}

/** Runs one unary call with a deadline, cancelling it when `signal` fires. */
export function callUnary<T>(options: {
  start: (deadline: Date, callback: (error: ServiceError | null, value?: T) => void) => ClientUnaryCall;
  what: string;
  clock: Clock;
  timeoutMs?: number;
  signal?: AbortSignal | undefined;
}): Promise<T> {
  const { signal, what } = options;
  throwIfAborted(signal);
  return new Promise<T>((resolve, reject) => {
    const deadline = new Date(options.clock.now() + (options.timeoutMs ?? managerCallTimeoutMs));
    const call = options.start(deadline, (error, value) => {
      listener?.[Symbol.dispose]();
      if (error !== null) reject(errorFromServiceError(error, what));
      else if (value === undefined) reject(new UnavailableError(`${what}: the peer answered nothing`));
      else resolve(value);
    });
    const listener =
      signal === undefined
        ? undefined
        : addAbortListener(signal, () => {
            call.cancel();
            reject(new CancelledError(`${what}: cancelled`, { cause: signal.reason }));
          });
  });
}
