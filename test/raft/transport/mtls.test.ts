import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

import { credentials, ServerCredentials } from "@grpc/grpc-js";
import { pino } from "pino";

import { systemClock } from "../../../src/common/clock.js";
import type { Message, NodeId } from "../../../src/raft/core/types.js";
import { createGrpcRaftTransport } from "../../../src/raft/transport/transport.js";
import type { RaftPeerCall, RaftTransport } from "../../../src/raft/transport/transport.js";
import { waitFor } from "../../helpers/wait.js";

const logger = pino({ level: "silent" });
const opensslMissing = spawnSync("openssl", ["version"], { stdio: "ignore" }).status !== 0;

interface Identity {
  readonly key: Buffer;
  readonly cert: Buffer;
}

/** A throwaway CA and one certificate per node, CN "raft-node-<id>", valid for localhost. */
async function makePki(dir: string, ids: readonly number[]): Promise<{ ca: Buffer; nodes: Map<number, Identity> }> {
  const openssl = (...args: string[]): void => {
    execFileSync("openssl", args, { cwd: dir, stdio: "ignore" });
  };
  const ecKey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  openssl("req", "-x509", ...ecKey, "-keyout", "ca.key", "-out", "ca.crt", "-days", "1", "-subj", "/CN=shoal-test-ca");
  await writeFile(join(dir, "san.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
  const nodes = new Map<number, Identity>();
  for (const id of ids) {
    openssl("req", ...ecKey, "-keyout", `n${id}.key`, "-out", `n${id}.csr`, "-subj", `/CN=raft-node-${id}`);
    openssl(
      "x509", "-req", "-in", `n${id}.csr`, "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
      "-out", `n${id}.crt`, "-days", "1", "-extfile", "san.ext",
    );
    nodes.set(id, { key: await readFile(join(dir, `n${id}.key`)), cert: await readFile(join(dir, `n${id}.crt`)) });
  }
  return { ca: await readFile(join(dir, "ca.crt")), nodes };
}

/** The control plane's binding: the node id is the one in the client certificate's CN. */
function nodeIdFromCertificate(call: RaftPeerCall): NodeId | null {
  const commonName = call.getAuthContext().sslPeerCertificate?.subject.CN;
  const match = typeof commonName === "string" ? /^raft-node-(\d+)$/.exec(commonName) : null;
  return match === null ? null : Number(match[1]);
}

function heartbeat(from: NodeId, to: NodeId): Message {
  return {
    type: "heartbeat", from, to, term: 1, logTerm: 0, index: 0, entries: [], commit: 0,
    snapshot: null, reject: false, rejectHint: 0, context: new Uint8Array(0),
  };
}

test("with mTLS, authorizePeer binds the sender id to its certificate", { skip: opensslMissing && "openssl is not installed" }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "shoal-raft-mtls-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const { ca, nodes } = await makePki(dir, [1, 2, 3]);
  const identity = (id: number): Identity => {
    const found = nodes.get(id);
    assert.ok(found);
    return found;
  };
  const start = async (id: NodeId, certificateOf: number): Promise<{ transport: RaftTransport; address: string; received: Message[]; unreachable: NodeId[] }> => {
    const own = identity(certificateOf);
    const transport = createGrpcRaftTransport({
      id,
      logger,
      clock: systemClock,
      channelCredentials: credentials.createSsl(ca, own.key, own.cert),
      authorizePeer: nodeIdFromCertificate,
    });
    t.after(() => transport.close());
    const received: Message[] = [];
    const unreachable: NodeId[] = [];
    transport.setHandler({
      step: (message) => received.push(message),
      reportUnreachable: (peer) => unreachable.push(peer),
      reportSnapshot: () => undefined,
    });
    const address = await transport.listen({
      host: "127.0.0.1",
      port: 0,
      credentials: ServerCredentials.createSsl(ca, [{ private_key: own.key, cert_chain: own.cert }], true),
    });
    // Dialled by name: TLS server names must not be IP addresses (RFC 6066).
    return { transport, address: address.replace("127.0.0.1", "localhost"), received, unreachable };
  };

  const one = await start(1, 1);
  const two = await start(2, 2);
  one.transport.addPeer(2, two.address);
  one.transport.send([heartbeat(1, 2)]);
  await waitFor("delivery over mTLS", () => (two.received.length === 1 ? true : undefined));
  assert.equal(two.received[0]?.from, 1);

  // Node 3's certificate cannot speak for node 1.
  const impostor = await start(1, 3);
  impostor.transport.addPeer(2, two.address);
  impostor.transport.send([heartbeat(1, 2)]);
  await waitFor("refusal reported", () => (impostor.unreachable.length > 0 ? true : undefined));
  assert.equal(two.received.length, 1);
});
