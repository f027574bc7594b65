// A tiny replicated key-value store: one process running RaftNode + WAL + gRPC transport and
// an HTTP endpoint. Used by bench/raft/main.ts and test/raft/process. Usage:
//   node kv-node.js --id 1 --data-dir DIR --raft-address 127.0.0.1:24801 --http-port 24791 \
//     --members 1=127.0.0.1:24801,2=127.0.0.1:24802,3=127.0.0.1:24803 [--bootstrap] [--log-level info]
// HTTP: POST /put {"key","value"} -> 200 {"index"} once applied (421 {"leader"} on a follower);
//       GET /get?key=K -> 200 {"value"} after a linearizable ReadIndex, 404 when absent;
//       GET /status -> {"id","leader","role","term","applied"}.
import { createServer } from "node:http";
import type { IncomingMessage, ServerResponse } from "node:http";
import { setImmediate as setImmediatePromise } from "node:timers/promises";
import { parseArgs } from "node:util";

import { systemClock } from "../../src/common/clock.js";
import { errorMessage, isShoalError } from "../../src/common/errors.js";
import { createLogger, parseLogLevel } from "../../src/common/logger.js";
import { NotLeaderError, RaftNode } from "../../src/raft/node.js";
import type { AppliedEntry, RaftMember, StateMachine } from "../../src/raft/node.js";
import { createGrpcRaftTransport } from "../../src/raft/transport/transport.js";

const requestBodyBytesMax = 64 * 1024;
/**
 * Connections waiting to be accepted. Node's default (511) is below the 1,000 clients that
 * connect at once at c=1000: the kernel drops the rest of the SYNs and they retry a second
 * later, which measured TCP's retry timer, not raft (etcd's Go listener uses somaxconn).
 */
const listenBacklog = 4096;

function parsePut(value: unknown): { key: string; value: string } {
  if (typeof value === "object" && value !== null && "key" in value && "value" in value) {
    const { key, value: text } = value;
    if (typeof key === "string" && typeof text === "string" && key.length > 0) return { key, value: text };
  }
  throw new Error('body must be {"key": non-empty string, "value": string}');
}

/** A put in the log: [key length u32][key][value], UTF-8; cheaper than JSON on every member. */
function encodePut(put: { key: string; value: string }): Buffer {
  const key = Buffer.from(put.key, "utf8");
  const value = Buffer.from(put.value, "utf8");
  const bytes = Buffer.allocUnsafe(4 + key.length + value.length);
  bytes.writeUInt32LE(key.length, 0);
  key.copy(bytes, 4);
  value.copy(bytes, 4 + key.length);
  return bytes;
}

/** The key of a put record (see encodePut); throws on a malformed one. */
function putKey(record: Buffer): string {
  const keyLength = record.length >= 4 ? record.readUInt32LE(0) : Number.POSITIVE_INFINITY;
  if (4 + keyLength > record.length) throw new Error(`malformed put record of ${record.length} bytes`);
  return record.toString("utf8", 4, 4 + keyLength);
}

/** The value of a put record that putKey() accepted. */
function putValue(record: Buffer): string {
  return record.toString("utf8", 4 + record.readUInt32LE(0));
}

/** Records per slice of a snapshot's encoding: 70 KB of copies at the bench's value size. */
const snapshotRecordsPerTurn = 250;

/** `records` as [record length u32][record] each, in one buffer outside the JavaScript heap. */
function encodeRecords(records: readonly Buffer[]): Buffer {
  const out = Buffer.allocUnsafeSlow(records.reduce((bytes, record) => bytes + 4 + record.length, 0));
  let offset = 0;
  for (const record of records) {
    out.writeUInt32LE(record.length, offset);
    out.set(record, offset + 4);
    offset += 4 + record.length;
  }
  return out;
}

/**
 * The state: each key's last put record, as the log carried it ([key length u32][key]
 * [value]), so that applying a put is one copy and a snapshot is copies only. Holding the
 * key and value as strings made every snapshot encode 2.7 MB of UTF-8: 10-17 ms of a
 * member's loop at the bench's 10,000 keys, against 6.4-8.4 ms for the copies (phase
 * stamps in each member while the cluster served puts).
 */
class KeyValueMachine implements StateMachine {
  readonly #records = new Map<string, Buffer>();

  value(key: string): string | undefined {
    const record = this.#records.get(key);
    return record === undefined ? undefined : putValue(record);
  }

  apply(entry: AppliedEntry): void {
    // A copy: entry.data is a view into a batch buffer this must not pin.
    const record = Buffer.from(entry.data);
    this.#records.set(putKey(record), record);
  }

  /**
   * The records are taken at the call (they never change), then copied
   * snapshotRecordsPerTurn at a time, one turn of the event loop each.
   */
  async snapshot(): Promise<Buffer[]> {
    const records = [...this.#records.values()];
    const parts: Buffer[] = [];
    for (let start = 0; start < records.length; start += snapshotRecordsPerTurn) {
      if (start > 0) await setImmediatePromise();
      parts.push(encodeRecords(records.slice(start, start + snapshotRecordsPerTurn)));
    }
    return parts;
  }

  restore(data: Uint8Array): void {
    this.#records.clear();
    const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    for (let offset = 0; offset < bytes.length; ) {
      const length = offset + 4 <= bytes.length ? bytes.readUInt32LE(offset) : Number.POSITIVE_INFINITY;
      if (offset + 4 + length > bytes.length) throw new Error(`snapshot truncated at byte ${offset} of ${bytes.length}`);
      // Copied out, so that the state does not pin the whole snapshot.
      const record = Buffer.from(bytes.subarray(offset + 4, offset + 4 + length));
      this.#records.set(putKey(record), record);
      offset += 4 + length;
    }
  }
}

function parseMembers(text: string): RaftMember[] {
  return text.split(",").map((part) => {
    const [id, address] = part.split("=");
    const number = Number(id);
    if (!Number.isSafeInteger(number) || number <= 0 || address === undefined) throw new Error(`bad member "${part}"`);
    return { id: number, address };
  });
}

function reply(response: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  response.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  response.end(text);
}

/**
 * Calls `done` once with the request body parsed as JSON, or with the error. A callback
 * rather than a promise, and a body in one chunk (every put's) parsed without a copy: this
 * runs for every put, and the leader's allocations drive its GC pauses (issue 4).
 */
function readBody(request: IncomingMessage, done: (error: Error | null, body: unknown) => void): void {
  const chunks: Buffer[] = [];
  let bytes = 0;
  let finished = false;
  const finish = (error: Error | null, body: unknown): void => {
    if (finished) return;
    finished = true;
    done(error, body);
  };
  request.on("data", (chunk: Buffer) => {
    bytes += chunk.length;
    if (bytes > requestBodyBytesMax) {
      request.destroy();
      finish(new Error(`body exceeds ${requestBodyBytesMax} bytes`), undefined);
      return;
    }
    chunks.push(chunk);
  });
  request.on("end", () => {
    let body: unknown;
    try {
      const [only] = chunks;
      body = JSON.parse((chunks.length === 1 && only !== undefined ? only : Buffer.concat(chunks)).toString("utf8"));
    } catch (error) {
      finish(error instanceof Error ? error : new Error(String(error)), undefined);
      return;
    }
    finish(null, body);
  });
  request.on("error", (error) => finish(error, undefined));
}

function replyError(response: ServerResponse, error: unknown): void {
  if (error instanceof NotLeaderError) reply(response, 421, { error: error.message, leader: error.leader });
  else reply(response, isShoalError(error) ? error.httpStatus : 400, { error: errorMessage(error) });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      id: { type: "string" },
      "data-dir": { type: "string" },
      "raft-address": { type: "string" },
      "http-port": { type: "string" },
      members: { type: "string" },
      bootstrap: { type: "boolean", default: false },
      "log-level": { type: "string", default: "warn" },
      "snapshot-every": { type: "string", default: "10000" },
    },
  });
  const id = Number(values.id);
  const [host, port] = (values["raft-address"] ?? "").split(":");
  if (values["data-dir"] === undefined || values.members === undefined || host === undefined || port === undefined) {
    throw new Error("--id, --data-dir, --raft-address, --http-port and --members are required");
  }
  const logger = createLogger({ level: parseLogLevel(values["log-level"] ?? "warn"), pretty: false });
  const transport = createGrpcRaftTransport({ id, logger, clock: systemClock });
  await transport.listen({ host, port: Number(port) });
  const machine = new KeyValueMachine();
  const node = await RaftNode.start({
    id,
    dataDir: values["data-dir"],
    stateMachine: machine,
    transport,
    logger,
    members: parseMembers(values.members),
    bootstrap: values.bootstrap === true,
    snapshotEveryEntries: Number(values["snapshot-every"]),
  });
  const put = (request: IncomingMessage, response: ServerResponse): void => {
    readBody(request, (error, body) => {
      let entry: Buffer;
      try {
        if (error !== null) throw error;
        entry = encodePut(parsePut(body));
      } catch (failure) {
        replyError(response, failure);
        return;
      }
      node.propose(entry).then(
        (position) => reply(response, 200, { index: position.index }),
        (failure: unknown) => replyError(response, failure),
      );
    });
  };
  const server = createServer((request, response) => {
    const target = request.url ?? "/";
    const queryStart = target.indexOf("?");
    // Routed on the raw path: a URL object per put cost more than the rest of the HTTP
    // handling (the leader's allocations drive its GC pauses, see issue 4).
    const path = queryStart === -1 ? target : target.slice(0, queryStart);
    if (request.method === "POST" && path === "/put") {
      put(request, response);
    } else if (request.method === "GET" && path === "/get") {
      const key = new URLSearchParams(queryStart === -1 ? "" : target.slice(queryStart + 1)).get("key") ?? "";
      node
        .readIndex()
        .then(() => {
          const value = machine.value(key);
          if (value === undefined) reply(response, 404, { error: `no key ${key}` });
          else reply(response, 200, { value });
        })
        .catch((error: unknown) => replyError(response, error));
    } else if (request.method === "GET" && path === "/status") {
      const status = node.status();
      reply(response, 200, { id: status.id, leader: status.leader, role: status.role, term: status.term, applied: status.applied });
    } else {
      reply(response, 404, { error: "unknown endpoint" });
    }
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen({ port: Number(values["http-port"]), host: "127.0.0.1", backlog: listenBacklog }, resolve));
  const shutdown = (): void => {
    server.close();
    server.closeAllConnections();
    void node.close().then(() => process.exit(0));
  };
  process.once("SIGTERM", shutdown);
  process.once("SIGINT", shutdown);
  // Only after the handlers: the bench may stop a node as soon as it reads this line.
  process.stdout.write(`READY ${id}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`kv-node failed: ${errorMessage(error)}\n`);
  process.exit(1);
});
