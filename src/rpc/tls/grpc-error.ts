import { status, type ServiceError } from "@grpc/grpc-js";

import { errorMessage, isShoalError } from "../../common/errors.js";

/**
 * The gRPC status error for a thrown value: a ShoalError keeps its kind (PermissionDenied
 * from requireRole becomes PERMISSION_DENIED), anything else is INTERNAL.
 */
export function grpcErrorOf(error: unknown): Partial<ServiceError> {
  const code = isShoalError(error) ? error.grpcStatus : status.INTERNAL;
  return { code, details: errorMessage(error), message: errorMessage(error) };
}
