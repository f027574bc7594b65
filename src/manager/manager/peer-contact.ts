import type { Clock } from "../../common/clock.js";
import type { RaftTransport, RaftTransportHandler } from "../../raft/index.js";

/**
 * When this manager last heard from each raft peer: every message a peer sends (append and
 * heartbeat answers to a leader, appends and heartbeats to a follower) counts. A leader
 * hears from every follower each heartbeat, so it can tell `node ls` which managers are
 * reachable, as swarm's ManagerStatus.Reachability does.
 */
export class PeerContacts {
  readonly #clock: Clock;
  readonly #lastHeardMs = new Map<number, number>();

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  heard(raftId: number): void {
    this.#lastHeardMs.set(raftId, this.#clock.now());
  }

  /** Whether `raftId` was heard from within the last `withinMs`. */
  heardWithin(raftId: number, withinMs: number): boolean {
    const last = this.#lastHeardMs.get(raftId);
    return last !== undefined && this.#clock.now() - last <= withinMs;
  }

  forget(raftId: number): void {
    this.#lastHeardMs.delete(raftId);
  }
}

/** `transport`, with every inbound message noted in `contacts` before raft steps it. */
export function notingPeerContacts(transport: RaftTransport, contacts: PeerContacts): RaftTransport {
  return {
    get id() {
      return transport.id;
    },
    setHandler: (handler: RaftTransportHandler | null) =>
      transport.setHandler(
        handler === null
          ? null
          : {
              step: (message) => {
                contacts.heard(message.from);
                handler.step(message);
              },
              reportUnreachable: (id) => handler.reportUnreachable(id),
              reportSnapshot: (id, status) => handler.reportSnapshot(id, status),
            },
      ),
    addPeer: (id, address) => transport.addPeer(id, address),
    removePeer: (id) => {
      contacts.forget(id);
      transport.removePeer(id);
    },
    peers: () => transport.peers(),
    send: (messages) => transport.send(messages),
    grpcService: () => transport.grpcService(),
    listen: (options) => transport.listen(options),
    stats: () => transport.stats(),
    close: () => transport.close(),
  };
}
