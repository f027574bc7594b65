import { join } from "node:path";

import { loadPackageDefinition } from "@grpc/grpc-js";
import { loadSync, type Options } from "@grpc/proto-loader";

import { packageRoot } from "../common/paths.js";
import type { ProtoGrpcType as HealthProto } from "../gen/health.js";

/** Must match the flags scripts/gen-proto.mjs gives proto-loader-gen-types. */
export const protoLoaderOptions: Options = {
  longs: Number,
  enums: String,
  bytes: Buffer,
  defaults: true,
  oneofs: true,
  includeDirs: [join(packageRoot, "proto")],
};

/**
 * Loads one of shoal's .proto files. The result's shape is declared by the matching file
 * that `npm run gen` writes into src/gen from the same .proto, so the cast below is the one
 * place where generated types meet the runtime definition.
 */
export function loadProto<T>(file: string): T {
  const definition = loadSync(file, protoLoaderOptions);
  return loadPackageDefinition(definition) as T;
}

export function loadHealthProto(): HealthProto {
  return loadProto<HealthProto>("shoal/v1/health.proto");
}
