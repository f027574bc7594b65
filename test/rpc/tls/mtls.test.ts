import assert from "node:assert/strict";
import { test, type TestContext } from "node:test";

import { status, type ServiceError } from "@grpc/grpc-js";

import { systemClock } from "../../../src/common/clock.js";
import type { HealthClient } from "../../../src/gen/shoal/v1/Health.js";
import { loadHealthProto } from "../../../src/rpc/proto.js";
import { startGrpcServer } from "../../../src/rpc/server.js";
import {
  channelCredentials,
  grpcErrorOf,
  nodeTrustFromPem,
  createPeerAuthenticator,
  serverCredentials,
  tlsChannelOptions,
  TlsMaterialSource,
  type AuthenticatedCall,
  type NodeTrust,
  type TlsMaterial,
} from "../../../src/rpc/tls/index.js";
import { newAuthority, nodeMaterial, testClusterId } from "./fixtures.js";

const authority = newAuthority();
const foreignAuthority = newAuthority();
const managerServer = nodeMaterial(authority, { nodeId: "manager0", role: "manager" });
const managerClient = nodeMaterial(authority, { nodeId: "manager1", role: "manager" });
const workerClient = nodeMaterial(authority, { nodeId: "worker1", role: "worker" });
const foreignClient = nodeMaterial(foreignAuthority, { nodeId: "intruder", role: "manager" });
const trust: NodeTrust = nodeTrustFromPem({ caPem: authority.certPem, clock: systemClock, clusterId: testClusterId });
const authenticator = createPeerAuthenticator(trust);
const healthProto = loadHealthProto();
const callDeadlineMs = 5_000;

interface TestServer {
  address: string;
  /** Identities the manager-only handler saw, whether or not it let them through. */
  seen: Array<string | null>;
}

/** A server whose Health.Check is a manager-only RPC answering with the caller's node id. */
async function startServer(t: TestContext, material: TlsMaterial | TlsMaterialSource, requireClientCert: boolean): Promise<TestServer> {
  const seen: Array<string | null> = [];
  const server = await startGrpcServer({
    host: "127.0.0.1",
    port: 0,
    credentials: serverCredentials(material instanceof TlsMaterialSource ? { source: material, requireClientCert } : { ...material, requireClientCert }),
    services: [
      {
        definition: healthProto.shoal.v1.Health.service,
        handlers: {
          Check(call: AuthenticatedCall, callback: (error: Partial<ServiceError> | null, value?: object) => void) {
            seen.push(authenticator.peerIdentity(call)?.nodeId ?? null);
            try {
              const identity = authenticator.requireRole(call, "manager");
              callback(null, { status: "SERVING", nodeId: identity.nodeId, version: identity.role });
            } catch (error) {
              callback(grpcErrorOf(error));
            }
          },
        },
      },
    ],
  });
  t.after(() => server.close());
  return { address: server.address, seen };
}

type CallResult = { ok: true; nodeId: string; role: string } | { ok: false; code: number; details: string };

async function check(t: TestContext, address: string, credentials: Parameters<typeof channelCredentials>[0]): Promise<CallResult> {
  const client: HealthClient = new healthProto.shoal.v1.Health(address, channelCredentials(credentials), tlsChannelOptions);
  t.after(() => client.close());
  return new Promise((resolve) => {
    client.Check({ service: "" }, { deadline: new Date(Date.now() + callDeadlineMs) }, (error, response) => {
      if (error !== null) resolve({ ok: false, code: error.code, details: error.details });
      else resolve({ ok: true, nodeId: response?.nodeId ?? "", role: response?.version ?? "" });
    });
  });
}

test("a manager certificate reaches a manager-only RPC, which sees its node id and role", async (t) => {
  const server = await startServer(t, managerServer, true);
  const result = await check(t, server.address, managerClient);
  assert.deepEqual(result, { ok: true, nodeId: "manager1", role: "manager" });
  assert.deepEqual(server.seen, ["manager1"]);
});

test("a worker certificate calling a manager-only RPC gets PERMISSION_DENIED", async (t) => {
  const server = await startServer(t, managerServer, true);
  const result = await check(t, server.address, workerClient);
  assert.equal(result.ok, false);
  assert.equal(!result.ok && result.code, status.PERMISSION_DENIED);
  assert.deepEqual(server.seen, ["worker1"]);
});

test("a client without a certificate is refused by a server that requires one", async (t) => {
  const server = await startServer(t, managerServer, true);
  const result = await check(t, server.address, { caPem: authority.certPem });
  assert.equal(result.ok, false);
  assert.deepEqual(server.seen, [], "the handshake must fail before any handler runs");
});

test("a client without a certificate gets UNAUTHENTICATED where certificates are optional", async (t) => {
  const server = await startServer(t, managerServer, false);
  const result = await check(t, server.address, { caPem: authority.certPem });
  assert.equal(!result.ok && result.code, status.UNAUTHENTICATED);
  assert.deepEqual(server.seen, [null]);
});

test("a certificate from another CA is refused, whether or not certificates are required", async (t) => {
  const strict = await startServer(t, managerServer, true);
  const strictResult = await check(t, strict.address, { caPem: authority.certPem, certPem: foreignClient.certPem, keyPem: foreignClient.keyPem });
  assert.equal(strictResult.ok, false);
  assert.deepEqual(strict.seen, []);
  const lenient = await startServer(t, managerServer, false);
  const lenientResult = await check(t, lenient.address, { caPem: authority.certPem, certPem: foreignClient.certPem, keyPem: foreignClient.keyPem });
  assert.equal(!lenientResult.ok && lenientResult.code, status.UNAUTHENTICATED);
  assert.deepEqual(lenient.seen, [null]);
});

test("a client refuses a server whose certificate is from another CA", async (t) => {
  const server = await startServer(t, nodeMaterial(foreignAuthority, { nodeId: "fake", role: "manager" }), false);
  const result = await check(t, server.address, { ...managerClient, caPem: authority.certPem });
  assert.equal(result.ok, false);
  assert.deepEqual(server.seen, []);
});

test("a client refuses a server that is not a manager, or of another cluster", async (t) => {
  const workerServer = await startServer(t, nodeMaterial(authority, { nodeId: "worker9", role: "worker" }), true);
  const result = await check(t, workerServer.address, managerClient);
  assert.equal(result.ok, false);
  assert.match(!result.ok ? result.details : "", /worker9 is a worker/);
  const server = await startServer(t, managerServer, true);
  const otherCluster = await check(t, server.address, { ...managerClient, clusterId: "cluster2" });
  assert.equal(otherCluster.ok, false);
  assert.match(!otherCluster.ok ? otherCluster.details : "", /cluster cluster1, not cluster2/);
  assert.deepEqual([...workerServer.seen, ...server.seen], []);
});

test("a certificate of another cluster signed by the same CA is refused by the server", async (t) => {
  const server = await startServer(t, managerServer, true);
  const stranger = nodeMaterial(authority, { nodeId: "manager5", role: "manager", clusterId: "cluster2" });
  const result = await check(t, server.address, stranger);
  assert.equal(!result.ok && result.code, status.UNAUTHENTICATED);
});

test("updating a server's material takes effect for new connections", async (t) => {
  const source = new TlsMaterialSource(managerServer);
  const server = await startServer(t, source, true);
  assert.equal((await check(t, server.address, { ...managerClient, clusterId: testClusterId })).ok, true);
  source.update(nodeMaterial(authority, { nodeId: "manager7", role: "manager", clusterId: "cluster3" }));
  const result = await check(t, server.address, { ...managerClient, clusterId: testClusterId });
  assert.match(!result.ok ? result.details : "", /cluster cluster3, not cluster1/);
});
