import assert from "node:assert/strict";
import { test } from "node:test";

import type { Message, NodeId } from "../../../src/raft/core/types.js";
import type { RaftTransport } from "../../../src/raft/transport/transport.js";
import { TestCluster, waitFor } from "./cluster.js";

/** `transport`, except that the first acknowledgement of an installed snapshot is lost. */
function losingFirstSnapshotAck(transport: RaftTransport): { transport: RaftTransport; lost: () => boolean } {
  let lost = false;
  let snapshotIndex = 0;
  const wrapped: RaftTransport = {
    id: transport.id,
    setHandler: (handler) =>
      transport.setHandler(
        handler === null
          ? null
          : {
              step: (message) => {
                if (message.type === "snap" && message.snapshot !== null) snapshotIndex = message.snapshot.metadata.index;
                handler.step(message);
              },
              reportUnreachable: (id) => handler.reportUnreachable(id),
              reportSnapshot: (id, status) => handler.reportSnapshot(id, status),
            },
      ),
    addPeer: (id, address) => transport.addPeer(id, address),
    removePeer: (id) => transport.removePeer(id),
    peers: () => transport.peers(),
    send: (messages: readonly Message[]) => {
      const isAck = (message: Message): boolean => message.type === "app-resp" && !message.reject && snapshotIndex > 0 && message.index === snapshotIndex;
      const kept = lost ? messages : messages.filter((message) => !isAck(message));
      if (kept.length < messages.length) lost = true;
      transport.send(kept);
    },
    grpcService: () => transport.grpcService(),
    listen: (options) => transport.listen(options),
    stats: () => transport.stats(),
    close: () => transport.close(),
  };
  return { transport: wrapped, lost: () => lost };
}

test("a member that installs a snapshot taken before its leader joined still answers that leader", async (t) => {
  const ack = { lost: (): boolean => false };
  const cluster = await TestCluster.start(1, {
    snapshotEveryEntries: 20,
    wrapTransport: (id: NodeId, transport: RaftTransport) => {
      if (id !== 3) return transport;
      const losing = losingFirstSnapshotAck(transport);
      ack.lost = losing.lost;
      return losing.transport;
    },
  });
  t.after(() => cluster.close());
  const one = cluster.member(1);
  assert.ok(one.node);
  await cluster.leader();
  // A snapshot that lists member 1 alone; the log behind it is compacted.
  for (let index = 0; index < 25; index += 1) await one.node.propose(Buffer.from(`before ${index}`));
  await waitFor("member 1's snapshot", () => (one.node?.status().snapshotIndex ?? 0) >= 20);

  // Member 2 joins from that snapshot, takes over, and member 1 leaves: the newest snapshot
  // member 2 has is still the one that does not list it.
  const two = await cluster.addMember(2);
  await one.node.addMember({ id: 2, address: two.address });
  await waitFor("member 2 caught up", () => (two.node?.status().applied ?? 0) >= (one.node?.status().applied ?? 0));
  one.node.transferLeadership(2);
  await waitFor("member 2 leads", () => two.node?.status().role === "leader");
  assert.ok(two.node);
  await two.node.removeMember(1);
  await cluster.stopMember(1);
  assert.ok(two.node.status().snapshotIndex < 30, "member 2 took no snapshot of its own");

  // Member 3 installs that snapshot, and its acknowledgement is lost: the leader, paused
  // until member 3 answers a heartbeat, sends it the entries that list member 2 only then.
  const three = await cluster.addMember(3);
  await two.node.addMember({ id: 3, address: three.address });
  await waitFor("member 3 caught up", () => (three.node?.status().applied ?? 0) >= (two.node?.status().applied ?? 0), 10_000);
  assert.equal(ack.lost(), true, "the snapshot's acknowledgement was dropped");
  await two.node.propose(Buffer.from("after"));
});
