import { invariant } from "./invariant.js";
import type { Message, NodeId } from "./types.js";

/** Pending ReadIndex requests a leader keeps; more are dropped with ProposalDroppedError. */
export const pendingReadIndexRequestsMax = 4096;

interface ReadIndexStatus {
  readonly request: Message;
  readonly index: number;
  /** What this request's confirmation heartbeats carry, and their answers echo. */
  readonly heartbeatContext: Uint8Array;
  readonly acks: Set<NodeId>;
}

function contextKey(context: Uint8Array): string {
  let key = "";
  for (const byte of context) key += byte.toString(16).padStart(2, "0");
  return key;
}

/**
 * The requester's id, then its context. Each member numbers its own reads, so a context
 * alone does not name a request: two members' equal contexts would be one request here,
 * and the second requester would never get an answer.
 */
function readRequestHeartbeatContext(request: Message): Uint8Array {
  const bytes = new Uint8Array(8 + request.context.length);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(request.from));
  bytes.set(request.context, 8);
  return bytes;
}

/**
 * ReadIndex bookkeeping on a leader (§6.4 of Ongaro's thesis): each request remembers the
 * commit index when it arrived; once a quorum answers a heartbeat carrying its context,
 * the leader knows it was still leader then, and every request queued before it is safe.
 * Requests are keyed by requester and context; heartbeats carry that pair.
 */
export class ReadOnly {
  readonly #pending = new Map<string, ReadIndexStatus>();
  #queue: string[] = [];

  size(): number {
    return this.#queue.length;
  }

  /** Queues `request` (once per requester and context); returns its heartbeat context. */
  addRequest(index: number, request: Message): Uint8Array {
    const heartbeatContext = readRequestHeartbeatContext(request);
    const key = contextKey(heartbeatContext);
    const queued = this.#pending.get(key);
    if (queued !== undefined) return queued.heartbeatContext;
    this.#pending.set(key, { request, index, heartbeatContext, acks: new Set() });
    this.#queue.push(key);
    return heartbeatContext;
  }

  /** Records a heartbeat acknowledgement carrying `heartbeatContext`; returns who has acked it. */
  receiveAck(from: NodeId, heartbeatContext: Uint8Array): ReadonlySet<NodeId> {
    const status = this.#pending.get(contextKey(heartbeatContext));
    if (status === undefined) return new Set();
    status.acks.add(from);
    return status.acks;
  }

  /** Releases the request with `heartbeatContext` and every request queued before it. */
  advance(heartbeatContext: Uint8Array): { request: Message; index: number }[] {
    const key = contextKey(heartbeatContext);
    const position = this.#queue.indexOf(key);
    if (position < 0) return [];
    const released = this.#queue.slice(0, position + 1);
    this.#queue = this.#queue.slice(position + 1);
    return released.map((releasedKey) => {
      const status = this.#pending.get(releasedKey);
      invariant(status !== undefined, "queued read request has no status");
      this.#pending.delete(releasedKey);
      return { request: status.request, index: status.index };
    });
  }

  lastPendingContext(): Uint8Array | null {
    const key = this.#queue.at(-1);
    if (key === undefined) return null;
    return this.#pending.get(key)?.heartbeatContext ?? null;
  }
}
