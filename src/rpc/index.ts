export { createHealthHandlers } from "./health.js";
export type { HealthSource } from "./health.js";
export { loadHealthProto, loadProto, protoLoaderOptions } from "./proto.js";
export { grpcMessageSizeBytesMax, startGrpcServer } from "./server.js";
export type { GrpcServer, GrpcService } from "./server.js";
