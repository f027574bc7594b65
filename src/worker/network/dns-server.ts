import { createSocket, type RemoteInfo, type Socket } from "node:dgram";
import { once } from "node:events";
import { connect, createServer, type Server, type Socket as TcpSocket } from "node:net";

import { systemClock, type Clock } from "../../common/clock.js";
import { errorMessage } from "../../common/errors.js";
import type { Logger } from "../../common/logger.js";
import {
  buildDnsAnswer,
  buildDnsError,
  dnsClassIn,
  dnsRcodeFormatError,
  dnsRcodeServerFailure,
  dnsTcpMessageBytesMax,
  dnsTypeA,
  parseDnsQuery,
  type DnsQuestion,
} from "./dns-message.js";

/** Queries forwarded to the host's resolvers and not yet answered; more are refused with SERVFAIL. */
export const forwardedQueriesMax = 1_024;
export const forwardTimeoutMs = 2_000;
/** Records change within a second of a task change: answers must not be cached longer. */
export const serviceRecordTtlSeconds = 0;
/** Open TCP connections (clients retry over TCP after a truncated answer); more are closed at once. */
export const tcpConnectionsMax = 256;
/** A TCP connection that sends no complete query for this long is closed (RFC 7766 §6.2.3). */
export const tcpIdleTimeoutMs = 10_000;

/**
 * What the resolver knows: the addresses `name` has for the container at `source`, or
 * undefined when the name is not a cluster name (then the query is forwarded).
 */
export type DnsLookup = (source: string, name: string) => readonly string[] | undefined;

interface Forwarded {
  client: RemoteInfo;
  id: number;
  cancelTimer: () => void;
}

/** IPv4 nameservers of a resolv.conf text, in order. */
export function parseResolvConfNameservers(text: string): string[] {
  return text
    .split("\n")
    .map((line) => /^\s*nameserver\s+(\d+\.\d+\.\d+\.\d+)\s*$/u.exec(line)?.[1])
    .filter((address): address is string => address !== undefined);
}

/**
 * Splits a TCP stream into DNS messages, each preceded by its 2-byte length; calls
 * `onMessage` for every complete one.
 */
class TcpFramer {
  #buffered: Buffer = Buffer.alloc(0);

  constructor(private readonly onMessage: (message: Buffer) => void) {}

  push(chunk: Buffer): void {
    this.#buffered = this.#buffered.byteLength === 0 ? chunk : Buffer.concat([this.#buffered, chunk]);
    while (this.#buffered.byteLength >= 2) {
      const length = this.#buffered.readUInt16BE(0);
      if (this.#buffered.byteLength < 2 + length) return;
      const message = this.#buffered.subarray(2, 2 + length);
      this.#buffered = this.#buffered.subarray(2 + length);
      this.onMessage(message);
    }
  }
}

function framed(message: Buffer): Buffer {
  const length = Buffer.alloc(2);
  length.writeUInt16BE(Math.min(message.byteLength, dnsTcpMessageBytesMax), 0);
  return Buffer.concat([length, message.subarray(0, dnsTcpMessageBytesMax)]);
}

/**
 * The node's resolver for containers, over UDP and TCP on the same port: cluster names
 * from `lookup`, everything else forwarded to the host's resolvers and relayed back (UDP
 * with a fresh id; TCP on a connection of its own per query).
 */
export class DnsServer {
  readonly #logger: Logger;
  readonly #lookup: DnsLookup;
  readonly #upstreams: readonly string[];
  readonly #clock: Clock;
  readonly #upstreamPort: number;
  readonly #forwarded = new Map<number, Forwarded>();
  #server: Socket | undefined;
  #upstream: Socket | undefined;
  #tcpServer: Server | undefined;
  readonly #tcpConnections = new Set<TcpSocket>();
  #nextId = 1;
  #upstreamIndex = 0;

  constructor(options: { logger: Logger; lookup: DnsLookup; upstreams: readonly string[]; clock?: Clock; upstreamPort?: number }) {
    this.#upstreamPort = options.upstreamPort ?? 53;
    this.#logger = options.logger.child({ component: "dns" });
    this.#lookup = options.lookup;
    this.#upstreams = options.upstreams;
    this.#clock = options.clock ?? systemClock;
  }

  /** Starts answering on `address`:`port` (0: any free port); resolves with the port bound. */
  async listen(address: string, port: number): Promise<number> {
    const server = createSocket("udp4");
    const upstream = createSocket("udp4");
    server.on("message", (message, client) => this.#onQuery(message, client));
    server.on("error", (error) => this.#logger.warn({ err: errorMessage(error) }, "dns socket error"));
    upstream.on("message", (message) => this.#onUpstreamAnswer(message));
    upstream.on("error", (error) => this.#logger.warn({ err: errorMessage(error) }, "dns upstream socket error"));
    server.bind(port, address);
    upstream.bind(0);
    this.#server = server;
    this.#upstream = upstream;
    await Promise.all([once(server, "listening"), once(upstream, "listening")]);
    const bound = server.address().port;
    const tcpServer = createServer((socket) => this.#onTcpConnection(socket));
    tcpServer.on("error", (error) => this.#logger.warn({ err: errorMessage(error) }, "dns tcp listener error"));
    this.#tcpServer = tcpServer;
    tcpServer.listen(bound, address);
    await once(tcpServer, "listening");
    return bound;
  }

  close(): void {
    for (const forwarded of this.#forwarded.values()) forwarded.cancelTimer();
    this.#forwarded.clear();
    this.#server?.close();
    this.#upstream?.close();
    this.#tcpServer?.close();
    for (const socket of this.#tcpConnections) socket.destroy();
    this.#tcpConnections.clear();
    this.#server = undefined;
    this.#upstream = undefined;
    this.#tcpServer = undefined;
  }

  #onTcpConnection(socket: TcpSocket): void {
    if (this.#tcpConnections.size >= tcpConnectionsMax) {
      socket.destroy();
      return;
    }
    this.#tcpConnections.add(socket);
    socket.setTimeout(tcpIdleTimeoutMs, () => socket.destroy());
    socket.on("close", () => this.#tcpConnections.delete(socket));
    socket.on("error", (error) => this.#logger.debug({ err: errorMessage(error) }, "dns tcp client error"));
    const source = socket.remoteAddress ?? "";
    const framer = new TcpFramer((message) => {
      this.#answerTcp(message, source).then(
        (answer) => {
          if (answer !== undefined && !socket.destroyed) socket.write(framed(answer));
        },
        (error: unknown) => {
          this.#logger.warn({ err: errorMessage(error) }, "dns tcp query failed");
          socket.destroy();
        },
      );
    });
    socket.on("data", (chunk: Buffer) => framer.push(chunk));
  }

  /** The answer to one query that came over TCP, or undefined when none can be given. */
  async #answerTcp(message: Buffer, source: string): Promise<Buffer | undefined> {
    let question: DnsQuestion;
    try {
      question = parseDnsQuery(message);
    } catch {
      return buildDnsError(message, dnsRcodeFormatError);
    }
    const addresses = question.class === dnsClassIn ? this.#lookup(source, question.name) : undefined;
    if (addresses !== undefined) {
      return buildDnsAnswer(question, question.type === dnsTypeA ? addresses : [], { ttlSeconds: serviceRecordTtlSeconds, messageBytesMax: dnsTcpMessageBytesMax });
    }
    return (await this.#forwardTcp(message)) ?? buildDnsError(message, dnsRcodeServerFailure);
  }

  /** Relays one query to an upstream resolver over TCP; undefined when it does not answer in time. */
  #forwardTcp(message: Buffer): Promise<Buffer | undefined> {
    const upstreamAddress = this.#upstreams[this.#upstreamIndex % Math.max(1, this.#upstreams.length)];
    if (upstreamAddress === undefined) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const upstream = connect(this.#upstreamPort, upstreamAddress);
      const finish = (answer: Buffer | undefined): void => {
        cancelTimer();
        upstream.destroy();
        resolve(answer);
      };
      const cancelTimer = this.#clock.setTimer(forwardTimeoutMs, () => {
        this.#upstreamIndex += 1;
        finish(undefined);
      });
      const framer = new TcpFramer((answer) => finish(answer));
      upstream.on("connect", () => upstream.write(framed(message)));
      upstream.on("data", (chunk: Buffer) => framer.push(chunk));
      upstream.on("error", (error) => {
        this.#logger.debug({ upstream: upstreamAddress, err: errorMessage(error) }, "dns tcp upstream failed; answering SERVFAIL");
        finish(undefined);
      });
      upstream.on("close", () => finish(undefined));
    });
  }

  #reply(message: Buffer, client: RemoteInfo): void {
    this.#server?.send(message, client.port, client.address);
  }

  #onQuery(message: Buffer, client: RemoteInfo): void {
    let question;
    try {
      question = parseDnsQuery(message);
    } catch {
      const error = buildDnsError(message, dnsRcodeFormatError);
      if (error !== undefined) this.#reply(error, client);
      return;
    }
    const addresses = question.class === dnsClassIn ? this.#lookup(client.address, question.name) : undefined;
    if (addresses !== undefined) {
      this.#reply(buildDnsAnswer(question, question.type === dnsTypeA ? addresses : [], { ttlSeconds: serviceRecordTtlSeconds }), client);
      return;
    }
    this.#forward(message, client, question);
  }

  #forward(message: Buffer, client: RemoteInfo, question: { id: number }): void {
    const upstreamAddress = this.#upstreams[this.#upstreamIndex % Math.max(1, this.#upstreams.length)];
    if (upstreamAddress === undefined || this.#forwarded.size >= forwardedQueriesMax || this.#upstream === undefined) {
      this.#reply(buildDnsError(message, dnsRcodeServerFailure) ?? Buffer.alloc(0), client);
      return;
    }
    let id = this.#nextId;
    while (this.#forwarded.has(id)) id = (id % 65_535) + 1;
    this.#nextId = (id % 65_535) + 1;
    const copy = Buffer.from(message);
    copy.writeUInt16BE(id, 0);
    const cancelTimer = this.#clock.setTimer(forwardTimeoutMs, () => {
      this.#forwarded.delete(id);
      // The next query tries the next resolver.
      this.#upstreamIndex += 1;
      this.#reply(buildDnsError(message, dnsRcodeServerFailure) ?? Buffer.alloc(0), client);
    });
    this.#forwarded.set(id, { client, id: question.id, cancelTimer });
    this.#upstream.send(copy, this.#upstreamPort, upstreamAddress);
  }

  #onUpstreamAnswer(message: Buffer): void {
    if (message.byteLength < 12 || message.byteLength > 65_535) return;
    const forwarded = this.#forwarded.get(message.readUInt16BE(0));
    if (forwarded === undefined) return;
    this.#forwarded.delete(message.readUInt16BE(0));
    forwarded.cancelTimer();
    const answer = Buffer.from(message);
    answer.writeUInt16BE(forwarded.id, 0);
    this.#reply(answer, forwarded.client);
  }
}
