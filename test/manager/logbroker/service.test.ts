import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { credentials as grpcCredentials, Metadata, status as grpcStatus, type ServiceError } from "@grpc/grpc-js";
import { pino } from "pino";

import type { ProtoGrpcType as LogBrokerProto } from "../../../src/gen/logbroker.js";
import { leaderAddressMetadataKey } from "../../../src/manager/dispatcher/index.js";
import { createLogBrokerService, LogBroker } from "../../../src/manager/logbroker/index.js";
import { loadProto, startGrpcServer } from "../../../src/rpc/index.js";
import type { NodeIdentity } from "../../../src/rpc/tls/index.js";

const silentLogger = pino({ level: "silent" });

async function serve(t: { after: (fn: () => Promise<void>) => void }, options: { identity: NodeIdentity; leader: boolean }): Promise<string> {
  const broker = new LogBroker({ resolveTasks: () => [{ taskId: "task-1", serviceId: "svc", nodeId: "node-1" }], logger: silentLogger });
  const service = createLogBrokerService({
    broker,
    logger: silentLogger,
    isLeader: () => options.leader,
    leaderAddress: () => "10.0.0.1:4242",
    authenticate: () => options.identity,
  });
  const server = await startGrpcServer({ host: "127.0.0.1", port: 0, services: [service] });
  t.after(() => server.close());
  return server.address;
}

/** The status a SubscribeLogs call ends with. */
function subscribeStatus(address: string): Promise<ServiceError | null> {
  const proto = loadProto<LogBrokerProto>("shoal/v1/logbroker.proto");
  const client = new proto.shoal.v1.LogBroker(address, grpcCredentials.createInsecure());
  const call = client.SubscribeLogs({ selector: { serviceIds: ["svc"] }, options: { follow: false, tail: -1, stdout: true, stderr: true } }, new Metadata());
  return new Promise((resolve) => {
    call.on("data", () => undefined);
    call.on("error", (error: ServiceError) => {
      client.close();
      resolve(error);
    });
    call.on("end", () => {
      client.close();
      resolve(null);
    });
  });
}

describe("LogBroker gRPC service", () => {
  test("SubscribeLogs refuses a worker certificate with PERMISSION_DENIED", async (t) => {
    const address = await serve(t, { identity: { nodeId: "node-1", role: "worker", clusterId: "c" }, leader: true });
    const error = await subscribeStatus(address);
    assert.equal(error?.code, grpcStatus.PERMISSION_DENIED);
  });

  test("a manager that does not lead answers UNAVAILABLE and names the leader", async (t) => {
    const address = await serve(t, { identity: { nodeId: "node-2", role: "manager", clusterId: "c" }, leader: false });
    const error = await subscribeStatus(address);
    assert.equal(error?.code, grpcStatus.UNAVAILABLE);
    assert.deepEqual(error?.metadata.get(leaderAddressMetadataKey), ["10.0.0.1:4242"]);
  });

  test("on the leader, a request whose node has no listener fails UNAVAILABLE rather than hanging", async (t) => {
    const address = await serve(t, { identity: { nodeId: "node-2", role: "manager", clusterId: "c" }, leader: true });
    const error = await subscribeStatus(address);
    assert.equal(error?.code, grpcStatus.UNAVAILABLE);
    assert.match(error?.details ?? "", /not connected to the leader/);
  });
});
