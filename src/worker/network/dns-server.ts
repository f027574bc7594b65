import { createSocket, type RemoteInfo, type Socket } from "node:dgram";
import { once } from "node:events";

import { systemClock, type Clock } from "../../common/clock.js";
import { errorMessage } from "../../common/errors.js";
import type { Logger } from "../../common/logger.js";
import { buildDnsAnswer, buildDnsError, dnsClassIn, dnsRcodeFormatError, dnsRcodeServerFailure, dnsTypeA, parseDnsQuery } from "./dns-message.js";

/** Queries forwarded to the host's resolvers and not yet answered; more are refused with SERVFAIL. */
export const forwardedQueriesMax = 1_024;
export const forwardTimeoutMs = 2_000;
/** Records change within a second of a task change: answers must not be cached longer. */
export const serviceRecordTtlSeconds = 0;

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
 * The node's resolver for containers (UDP): cluster names from `lookup`, everything else
 * forwarded to the host's resolvers with a fresh id and relayed back.
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
    await Promise.all([once(server, "listening"), once(upstream, "listening")]);
    this.#server = server;
    this.#upstream = upstream;
    return server.address().port;
  }

  close(): void {
    for (const forwarded of this.#forwarded.values()) forwarded.cancelTimer();
    this.#forwarded.clear();
    this.#server?.close();
    this.#upstream?.close();
    this.#server = undefined;
    this.#upstream = undefined;
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
