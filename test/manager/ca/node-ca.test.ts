import assert from "node:assert/strict";
import { generateKeyPairSync, randomBytes, sign, X509Certificate } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test, type TestContext } from "node:test";

import { status } from "@grpc/grpc-js";
import { pino } from "pino";

import { systemClock } from "../../../src/common/clock.js";
import { FailedPreconditionError, InvalidArgumentError, PermissionDeniedError, UnavailableError } from "../../../src/common/errors.js";
import {
  CertificateRenewer,
  clusterRootCa,
  createCertificateAuthority,
  createNodeCaService,
  generateJoinTokens,
  joinWithToken,
  loadCaProto,
  nodeCertificateProofMessage,
  renewFromManagers,
  renewNodeCertificate,
  rotateJoinToken,
  type CertificateAuthority,
} from "../../../src/manager/ca/index.js";
import { clusterDefaults, createIdGenerator, type Cluster } from "../../../src/manager/objects/index.js";
import { MemoryStore } from "../../../src/manager/store/index.js";
import { startGrpcServer } from "../../../src/rpc/server.js";
import {
  channelCredentials,
  loadTlsMaterial,
  nodeIdentityOf,
  saveTlsMaterial,
  serverCredentials,
  tlsChannelOptions,
  TlsMaterialSource,
  verifyNodeCertificate,
} from "../../../src/rpc/tls/index.js";
import { FakeClock } from "../../helpers/fake-clock.js";
import { waitFor } from "../../helpers/wait.js";
import { nodeMaterial } from "../../rpc/tls/fixtures.js";

const logger = pino({ level: "silent" });
const clusterId = "cluster1";

interface Harness {
  address: string;
  store: MemoryStore;
  authority: CertificateAuthority;
  cluster(): Cluster;
}

/** A manager serving NodeCA over TLS (client certificates optional), with its cluster in a local store. */
async function startManager(t: TestContext): Promise<Harness> {
  const authority = createCertificateAuthority({ clock: systemClock, randomBytes });
  const store = new MemoryStore({ proposer: null, logger });
  await store.update((tx) =>
    tx.create("cluster", {
      id: clusterId,
      spec: { name: "default", labels: {}, ...clusterDefaults },
      rootCa: clusterRootCa(authority),
      joinTokens: generateJoinTokens({ caCertDer: authority.certDer, randomBytes }),
    }),
  );
  const material = nodeMaterial(authority, { nodeId: "manager0", role: "manager", clusterId });
  const server = await startGrpcServer({
    host: "127.0.0.1",
    port: 0,
    credentials: serverCredentials({ ...material, requireClientCert: false }),
    services: [createNodeCaService({ store, authority, logger, clock: systemClock, newNodeId: createIdGenerator(randomBytes) })],
  });
  t.after(() => server.close());
  const cluster = (): Cluster => {
    const found = store.view((tx) => tx.get("cluster", clusterId));
    assert.ok(found !== undefined);
    return found;
  };
  return { address: server.address, store, authority, cluster };
}

test("a worker token yields a worker certificate and registers the node", async (t) => {
  const manager = await startManager(t);
  const joined = await joinWithToken({ address: manager.address, token: manager.cluster().joinTokens.worker, addresses: ["127.0.0.1", "node-a"] });
  assert.equal(joined.identity.role, "worker");
  assert.equal(joined.identity.clusterId, clusterId);
  assert.equal(joined.caPem, manager.authority.certPem);
  const certificate = new X509Certificate(joined.certPem);
  assert.deepEqual(verifyNodeCertificate(certificate, { roots: () => [manager.authority.certificate], now: () => Date.now() }), joined.identity);
  assert.match(certificate.subjectAltName ?? "", /DNS:node-a/);
  const node = manager.store.view((tx) => tx.get("node", joined.identity.nodeId));
  assert.equal(node?.spec.role, "worker");
  assert.equal(node?.status.addr, "127.0.0.1");
});

test("a manager token yields a manager certificate", async (t) => {
  const manager = await startManager(t);
  const joined = await joinWithToken({ address: manager.address, token: manager.cluster().joinTokens.manager, addresses: [] });
  assert.equal(joined.identity.role, "manager");
  assert.equal(manager.store.view((tx) => tx.get("node", joined.identity.nodeId))?.spec.role, "manager");
});

test("the node is registered with the availability asked for at join; an unknown one registers nothing", async (t) => {
  const manager = await startManager(t);
  const token = manager.cluster().joinTokens.worker;
  const drained = await joinWithToken({ address: manager.address, token, addresses: [], availability: "drain" });
  assert.equal(manager.store.view((tx) => tx.get("node", drained.identity.nodeId))?.spec.availability, "drain");
  const active = await joinWithToken({ address: manager.address, token, addresses: [] });
  assert.equal(manager.store.view((tx) => tx.get("node", active.identity.nodeId))?.spec.availability, "active");
  const NodeCA = loadCaProto().shoal.v1.NodeCA;
  const client = new NodeCA(manager.address, channelCredentials({ caPem: manager.authority.certPem }), tlsChannelOptions);
  t.after(() => client.close());
  const key = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const publicKey = key.publicKey.export({ type: "spki", format: "der" });
  const issue = (asked: { token: string; availability: string }): Promise<{ code: number; details: string }> => {
    const proof = sign("sha256", nodeCertificateProofMessage(asked.token, publicKey), { key: key.privateKey, dsaEncoding: "der" });
    return new Promise((resolve) => {
      client.IssueNodeCertificate({ ...asked, publicKey, proof, addresses: [] }, { deadline: new Date(Date.now() + 5_000) }, (error) =>
        resolve({ code: error?.code ?? status.OK, details: error?.details ?? "" }),
      );
    });
  };
  const unknown = await issue({ token, availability: "asleep" });
  assert.equal(unknown.code, status.INVALID_ARGUMENT);
  assert.match(unknown.details, /active, pause or drain/);
  // A renewal keeps the node's availability: `node update` is the way to change it.
  const renewal = await issue({ token: "", availability: "drain" });
  assert.equal(renewal.code, status.INVALID_ARGUMENT);
  assert.match(renewal.details, /only given when joining/);
  assert.equal(manager.store.view((tx) => tx.find("node")).length, 2);
});

test("a wrong secret is refused by the CA and registers nothing", async (t) => {
  const manager = await startManager(t);
  const good = manager.cluster().joinTokens.worker;
  const wrong = `${good.slice(0, -25)}${"z".repeat(25)}`;
  await assert.rejects(joinWithToken({ address: manager.address, token: wrong, addresses: [] }), PermissionDeniedError);
  assert.equal(manager.store.view((tx) => tx.find("node")).length, 0);
});

test("a token pinning another CA is refused by the joining side before it sends the secret", async (t) => {
  const manager = await startManager(t);
  const other = createCertificateAuthority({ clock: systemClock, randomBytes });
  const foreign = generateJoinTokens({ caCertDer: other.certDer, randomBytes }).worker;
  await assert.rejects(joinWithToken({ address: manager.address, token: foreign, addresses: [] }), (error: unknown) => {
    assert.ok(error instanceof FailedPreconditionError);
    assert.match(error.message, /does not match the join token/);
    return true;
  });
  assert.equal(manager.store.view((tx) => tx.find("node")).length, 0);
});

test("a malformed token is refused before any call", async () => {
  await assert.rejects(joinWithToken({ address: "127.0.0.1:1", token: "SWMTKN-1-short-secret", addresses: [] }), InvalidArgumentError);
});

test("a manager whose CA is not the cluster's refuses to issue", async (t) => {
  const manager = await startManager(t);
  const cluster = manager.cluster();
  const other = createCertificateAuthority({ clock: systemClock, randomBytes });
  await manager.store.update((tx) => tx.update("cluster", { ...cluster, rootCa: clusterRootCa(other) }));
  await assert.rejects(joinWithToken({ address: manager.address, token: cluster.joinTokens.worker, addresses: [] }), UnavailableError);
  assert.equal(manager.store.view((tx) => tx.find("node")).length, 0);
});

test("rotating a role's token invalidates the old one and not the other role's", async (t) => {
  const manager = await startManager(t);
  const before = manager.cluster();
  await manager.store.update((tx) =>
    tx.update("cluster", { ...before, joinTokens: rotateJoinToken(before.joinTokens, "worker", { randomBytes }) }),
  );
  const after = manager.cluster();
  await assert.rejects(joinWithToken({ address: manager.address, token: before.joinTokens.worker, addresses: [] }), PermissionDeniedError);
  assert.equal((await joinWithToken({ address: manager.address, token: after.joinTokens.worker, addresses: [] })).identity.role, "worker");
  assert.equal((await joinWithToken({ address: manager.address, token: before.joinTokens.manager, addresses: [] })).identity.role, "manager");
});

test("renewal keeps the node id, follows the role in the store, and stops once the node is removed", async (t) => {
  const manager = await startManager(t);
  const joined = await joinWithToken({ address: manager.address, token: manager.cluster().joinTokens.worker, addresses: [] });
  const renewed = await renewNodeCertificate({ address: manager.address, current: joined, addresses: [] });
  assert.deepEqual(renewed.identity, joined.identity);
  assert.notEqual(renewed.keyPem, joined.keyPem);
  const node = manager.store.view((tx) => tx.get("node", joined.identity.nodeId));
  assert.ok(node !== undefined);
  await manager.store.update((tx) => tx.update("node", { ...node, spec: { ...node.spec, role: "manager" } }));
  const promoted = await renewNodeCertificate({ address: manager.address, current: renewed, addresses: [] });
  assert.deepEqual(promoted.identity, { ...joined.identity, role: "manager" });
  await manager.store.update((tx) => tx.delete("node", joined.identity.nodeId));
  await assert.rejects(renewNodeCertificate({ address: manager.address, current: promoted, addresses: [] }), PermissionDeniedError);
});

test("renewal without a certificate is UNAUTHENTICATED, and a proof by another key is INVALID_ARGUMENT", async (t) => {
  const manager = await startManager(t);
  const NodeCA = loadCaProto().shoal.v1.NodeCA;
  const client = new NodeCA(manager.address, channelCredentials({ caPem: manager.authority.certPem }), tlsChannelOptions);
  t.after(() => client.close());
  const call = (token: string, proveWithOtherKey: boolean): Promise<number> => {
    const key = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
    const prover = proveWithOtherKey ? generateKeyPairSync("ec", { namedCurve: "prime256v1" }) : key;
    const publicKey = key.publicKey.export({ type: "spki", format: "der" });
    const proof = sign("sha256", nodeCertificateProofMessage(token, publicKey), { key: prover.privateKey, dsaEncoding: "der" });
    return new Promise((resolve) => {
      client.IssueNodeCertificate({ token, publicKey, proof, addresses: [] }, { deadline: new Date(Date.now() + 5_000) }, (error) => resolve(error?.code ?? status.OK));
    });
  };
  assert.equal(await call("", false), status.UNAUTHENTICATED);
  assert.equal(await call(manager.cluster().joinTokens.worker, true), status.INVALID_ARGUMENT);
  assert.equal(await call(manager.cluster().joinTokens.worker, false), status.OK);
});

test("the renewer renews over NodeCA from the first manager that answers and saves the result", async (t) => {
  const manager = await startManager(t);
  const joined = await joinWithToken({ address: manager.address, token: manager.cluster().joinTokens.worker, addresses: [] });
  const directory = await mkdtemp(join(tmpdir(), "shoal-renew-"));
  t.after(() => rm(directory, { recursive: true, force: true }));
  const source = new TlsMaterialSource(joined);
  const renewer = new CertificateRenewer({
    source,
    clock: new FakeClock(Date.now()),
    logger,
    // Port 1 on loopback refuses connections: the renewer must move on to the next manager.
    renew: renewFromManagers({ managers: () => ["127.0.0.1:1", manager.address], addresses: () => ["127.0.0.1"] }),
    save: (material, options) => saveTlsMaterial(directory, material, options),
  });
  const controller = new AbortController();
  const running = renewer.run(controller.signal);
  t.after(async () => {
    controller.abort();
    await running;
  });
  renewer.renewSoon();
  await waitFor("the renewal", () => (renewer.renewals === 1 ? true : undefined));
  assert.notEqual(source.material.certPem, joined.certPem);
  assert.deepEqual(await loadTlsMaterial(directory), source.material);
  assert.equal(nodeIdentityOf(new X509Certificate(source.material.certPem))?.nodeId, joined.identity.nodeId);
});

/**
 * A server posing as a manager with a certificate from its own CA: it answers
 * GetRootCACertificate with `rootPem(its own CA)` and records IssueNodeCertificate calls.
 */
async function startImpostor(t: TestContext, rootPem: (impostorCa: CertificateAuthority) => string): Promise<{ address: string; issueCalls: string[] }> {
  const impostorCa = createCertificateAuthority({ clock: systemClock, randomBytes });
  const caPemToSend = rootPem(impostorCa);
  const issueCalls: string[] = [];
  const server = await startGrpcServer({
    host: "127.0.0.1",
    port: 0,
    credentials: serverCredentials({ ...nodeMaterial(impostorCa, { nodeId: "impostor", role: "manager", clusterId }), requireClientCert: false }),
    services: [
      {
        definition: loadCaProto().shoal.v1.NodeCA.service,
        handlers: {
          GetRootCACertificate: (_call: unknown, callback: (error: null, value: object) => void) => callback(null, { certificate: caPemToSend }),
          IssueNodeCertificate: (call: { request: { token: string } }, callback: (error: { code: number }) => void) => {
            issueCalls.push(call.request.token);
            callback({ code: status.UNAVAILABLE });
          },
        },
      },
    ],
  });
  t.after(() => server.close());
  return { address: server.address, issueCalls };
}

test("a server relaying the real root CA without its key never receives the token", async (t) => {
  const manager = await startManager(t);
  const impostor = await startImpostor(t, () => manager.authority.certPem);
  await assert.rejects(joinWithToken({ address: impostor.address, token: manager.cluster().joinTokens.worker, addresses: [] }), UnavailableError);
  assert.deepEqual(impostor.issueCalls, []);
});

test("a root CA answer with the impostor's own CA appended is refused", async (t) => {
  const manager = await startManager(t);
  const impostor = await startImpostor(t, (impostorCa) => manager.authority.certPem + impostorCa.certPem);
  await assert.rejects(
    joinWithToken({ address: impostor.address, token: manager.cluster().joinTokens.worker, addresses: [] }),
    /2 root CA certificates instead of one/,
  );
  assert.deepEqual(impostor.issueCalls, []);
});
