import assert from "node:assert/strict";
import { createSocket, type Socket } from "node:dgram";
import { once } from "node:events";
import { connect, createServer, type Socket as TcpSocket } from "node:net";
import { test, type TestContext } from "node:test";

import { pino } from "pino";

import { buildDnsAnswer, parseDnsQuery } from "../../../src/worker/network/dns-message.js";
import { DnsServer, parseResolvConfNameservers } from "../../../src/worker/network/dns-server.js";

function query(name: string, options: { id?: number; type?: number } = {}): Buffer {
  const labels = name.split(".").map((label) => Buffer.concat([Buffer.from([label.length]), Buffer.from(label)]));
  const header = Buffer.alloc(12);
  header.writeUInt16BE(options.id ?? 0x1234, 0);
  header.writeUInt16BE(0x0100, 2);
  header.writeUInt16BE(1, 4);
  const tail = Buffer.alloc(5);
  tail.writeUInt16BE(options.type ?? 1, 1);
  tail.writeUInt16BE(1, 3);
  return Buffer.concat([header, ...labels, tail]);
}

/** The A records of an answer built by buildDnsAnswer (answers point back at the question's name). */
function answerAddresses(message: Buffer): { id: number; rcode: number; addresses: string[] } {
  const count = message.readUInt16BE(6);
  const rcode = message.readUInt16BE(2) & 0xf;
  // An error answer to a message that did not parse carries no question.
  if (message.readUInt16BE(4) === 0) return { id: message.readUInt16BE(0), rcode, addresses: [] };
  let offset = 12;
  while (offset < message.byteLength && message[offset] !== 0) offset += (message[offset] ?? 0) + 1;
  offset += 5;
  const addresses: string[] = [];
  for (let index = 0; index < count; index += 1) {
    addresses.push([...message.subarray(offset + 12, offset + 16)].join("."));
    offset += 16;
  }
  return { id: message.readUInt16BE(0), rcode, addresses };
}

test("DNS queries parse with their limits; answers carry A records and truncate past 512 bytes", () => {
  const question = parseDnsQuery(query("Tasks.Web"));
  assert.equal(question.name, "tasks.web");
  assert.equal(question.type, 1);
  assert.deepEqual(answerAddresses(buildDnsAnswer(question, ["10.0.0.1", "10.0.0.2"], { ttlSeconds: 0 })).addresses, ["10.0.0.1", "10.0.0.2"]);
  const many = buildDnsAnswer(question, Array.from({ length: 100 }, (_, index) => `10.0.1.${index}`), { ttlSeconds: 0 });
  assert.ok(many.byteLength <= 512);
  assert.notEqual(many.readUInt16BE(2) & 0x0200, 0, "TC is set when records were left out");
  assert.throws(() => parseDnsQuery(Buffer.alloc(5)), /size/u);
  assert.throws(() => parseDnsQuery(Buffer.concat([query("a"), Buffer.alloc(600)])), /size/u);
  const compressed = query("web");
  compressed[12] = 0xc0;
  assert.throws(() => parseDnsQuery(compressed), /label/u);
  assert.deepEqual(parseResolvConfNameservers("# x\nnameserver 10.0.0.2\nnameserver ::1\n nameserver 1.1.1.1 \nsearch lan\n"), ["10.0.0.2", "1.1.1.1"]);
});

async function udpSocket(t: TestContext): Promise<Socket> {
  const socket = createSocket("udp4");
  socket.bind(0, "127.0.0.1");
  await once(socket, "listening");
  t.after(() => socket.close());
  return socket;
}

async function ask(socket: Socket, port: number, message: Buffer): Promise<Buffer> {
  const reply = once(socket, "message");
  socket.send(message, port, "127.0.0.1");
  const [answer] = (await reply) as [Buffer];
  return answer;
}

test("the resolver answers cluster names itself and relays other names to the host's resolver", { timeout: 10_000 }, async (t) => {
  const upstream = await udpSocket(t);
  upstream.on("message", (message: Buffer, from) => {
    const question = parseDnsQuery(message);
    upstream.send(buildDnsAnswer(question, ["192.0.2.7"], { ttlSeconds: 60 }), from.port, from.address);
  });
  const server = new DnsServer({
    logger: pino({ level: "silent" }),
    lookup: (source, name) => (source === "127.0.0.1" && name === "web" ? ["10.240.1.2"] : undefined),
    upstreams: ["127.0.0.1"],
    upstreamPort: upstream.address().port,
  });
  const port = await server.listen("127.0.0.1", 0);
  t.after(() => server.close());
  const client = await udpSocket(t);
  assert.deepEqual(answerAddresses(await ask(client, port, query("web", { id: 7 }))), { id: 7, rcode: 0, addresses: ["10.240.1.2"] });
  assert.deepEqual(answerAddresses(await ask(client, port, query("web", { id: 8, type: 28 }))).addresses, [], "AAAA of a cluster name: empty NOERROR");
  assert.deepEqual(answerAddresses(await ask(client, port, query("example.org", { id: 9 }))), { id: 9, rcode: 0, addresses: ["192.0.2.7"] }, "forwarded with the client's id restored");
  assert.equal(answerAddresses(await ask(client, port, Buffer.from([0, 5, 0x81, 0, 0, 0, 0, 0, 0, 0, 0, 0]))).rcode, 1, "a response sent as a query is a format error");
});

function framedQuery(message: Buffer): Buffer {
  const length = Buffer.alloc(2);
  length.writeUInt16BE(message.byteLength, 0);
  return Buffer.concat([length, message]);
}

/** Sends framed queries on one TCP connection (split across writes) and collects as many framed answers. */
async function askTcp(port: number, messages: readonly Buffer[]): Promise<Buffer[]> {
  const socket: TcpSocket = connect(port, "127.0.0.1");
  await once(socket, "connect");
  const bytes = Buffer.concat(messages.map(framedQuery));
  // A query split mid-frame must still be read whole.
  socket.write(bytes.subarray(0, 3));
  socket.write(bytes.subarray(3));
  const answers: Buffer[] = [];
  let buffered = Buffer.alloc(0);
  for await (const chunk of socket) {
    buffered = Buffer.concat([buffered, chunk as Buffer]);
    while (buffered.byteLength >= 2 && buffered.byteLength >= 2 + buffered.readUInt16BE(0)) {
      answers.push(buffered.subarray(2, 2 + buffered.readUInt16BE(0)));
      buffered = buffered.subarray(2 + buffered.readUInt16BE(0));
    }
    if (answers.length === messages.length) break;
  }
  socket.destroy();
  return answers;
}

test("over TCP, the resolver answers in full what UDP truncates, and relays other names over TCP", { timeout: 10_000 }, async (t) => {
  const many = Array.from({ length: 100 }, (_, index) => `10.240.2.${index}`);
  const upstream = createServer((socket) => {
    socket.on("data", (chunk: Buffer) => {
      const question = parseDnsQuery(chunk.subarray(2));
      socket.write(framedQuery(buildDnsAnswer(question, ["192.0.2.9"], { ttlSeconds: 60 })));
    });
  });
  upstream.listen(0, "127.0.0.1");
  await once(upstream, "listening");
  t.after(() => upstream.close());
  const upstreamAddress = upstream.address();
  assert.ok(upstreamAddress !== null && typeof upstreamAddress === "object");
  const server = new DnsServer({
    logger: pino({ level: "silent" }),
    lookup: (_source, name) => (name === "tasks.web" ? many : undefined),
    upstreams: ["127.0.0.1"],
    upstreamPort: upstreamAddress.port,
  });
  const port = await server.listen("127.0.0.1", 0);
  t.after(() => server.close());
  const overUdp = await ask(await udpSocket(t), port, query("tasks.web", { id: 1 }));
  assert.notEqual(overUdp.readUInt16BE(2) & 0x0200, 0, "the UDP answer is truncated");
  // Answers may come back in any order over TCP (RFC 7766 §6.2.1.1): match them by id.
  const answers = await askTcp(port, [query("tasks.web", { id: 2 }), query("example.org", { id: 3 })]);
  const full = answers.find((answer) => answer.readUInt16BE(0) === 2);
  const relayed = answers.find((answer) => answer.readUInt16BE(0) === 3);
  assert.ok(full !== undefined && relayed !== undefined);
  assert.equal(full.readUInt16BE(2) & 0x0200, 0, "the TCP answer is not truncated");
  assert.deepEqual(answerAddresses(full), { id: 2, rcode: 0, addresses: many });
  assert.deepEqual(answerAddresses(relayed), { id: 3, rcode: 0, addresses: ["192.0.2.9"] });
});
