import { invariant } from "./invariant.js";
import type { Message, NodeId } from "./types.js";

/** Pending ReadIndex requests a leader keeps; more are dropped with ProposalDroppedError. */
export const pendingReadIndexRequestsMax = 4096;

interface ReadIndexStatus {
  readonly request: Message;
  readonly index: number;
  readonly acks: Set<NodeId>;
}

function contextKey(context: Uint8Array): string {
  let key = "";
  for (const byte of context) key += byte.toString(16).padStart(2, "0");
  return key;
}

/**
 * ReadIndex bookkeeping on a leader (§6.4 of Ongaro's thesis): each request remembers the
 * commit index when it arrived; once a quorum answers a heartbeat carrying its context,
 * the leader knows it was still leader then, and every request queued before it is safe.
 */
export class ReadOnly {
  readonly #pending = new Map<string, ReadIndexStatus>();
  #queue: string[] = [];

  size(): number {
    return this.#queue.length;
  }

  addRequest(index: number, request: Message): void {
    const key = contextKey(request.context);
    if (this.#pending.has(key)) return;
    this.#pending.set(key, { request, index, acks: new Set() });
    this.#queue.push(key);
  }

  /** Records a heartbeat acknowledgement carrying `context`; returns who has acked it. */
  receiveAck(from: NodeId, context: Uint8Array): ReadonlySet<NodeId> {
    const status = this.#pending.get(contextKey(context));
    if (status === undefined) return new Set();
    status.acks.add(from);
    return status.acks;
  }

  /** Releases the request with `context` and every request queued before it. */
  advance(context: Uint8Array): { request: Message; index: number }[] {
    const key = contextKey(context);
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
    return this.#pending.get(key)?.request.context ?? null;
  }
}
