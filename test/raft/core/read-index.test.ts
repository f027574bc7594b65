// ReadIndex on the leader (thesis §6.4) when requests from different members carry equal
// contexts: each member numbers its own reads, so equal contexts are ordinary.
import assert from "node:assert/strict";
import { test } from "node:test";

import type { Message, NodeId } from "../../../src/raft/core/types.js";
import { Network, message, readMessages } from "./helpers.js";

const sharedContext = new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0]);

/** A three-member network whose leader (1) has committed an entry of its term. */
function networkWithLeader(): Network {
  const network = Network.ofSize(3);
  network.campaign(1);
  network.propose(1, "x");
  return network;
}

/** Steps a read into `id` and returns what it forwards to the leader (nothing is delivered). */
function forwardedRead(network: Network, id: NodeId): Message {
  const node = network.node(id);
  node.step(message({ type: "read-index", from: id, to: id, context: sharedContext }));
  const [forwarded, ...rest] = readMessages(node);
  assert.equal(rest.length, 0);
  assert.equal(forwarded?.type, "read-index");
  return forwarded;
}

test("ReadIndex: two followers forwarding reads with the same context are both answered", () => {
  const network = networkWithLeader();
  const leader = network.node(1);
  // Both requests reach the leader before any confirmation round ends.
  leader.step(forwardedRead(network, 2));
  leader.step(forwardedRead(network, 3));
  network.send(...readMessages(leader));
  const expected = [{ index: leader.log.committed, requestContext: sharedContext }];
  assert.deepEqual(network.node(2).readStates, expected);
  assert.deepEqual(network.node(3).readStates, expected);
});

test("ReadIndex: the leader's own read and a follower's with the same context are both answered", () => {
  const network = networkWithLeader();
  const leader = network.node(1);
  leader.step(forwardedRead(network, 2));
  leader.step(message({ type: "read-index", from: 1, to: 1, context: sharedContext }));
  network.send(...readMessages(leader));
  const expected = [{ index: leader.log.committed, requestContext: sharedContext }];
  assert.deepEqual(network.node(2).readStates, expected);
  assert.deepEqual(leader.readStates, expected);
});

test("ReadIndex: a read repeated by the same member is confirmed once", () => {
  // A duplicated forward (the transport may deliver a message twice) is one request.
  const network = networkWithLeader();
  const leader = network.node(1);
  const forwarded = forwardedRead(network, 2);
  leader.step(forwarded);
  leader.step(forwarded);
  network.send(...readMessages(leader));
  assert.deepEqual(network.node(2).readStates, [{ index: leader.log.committed, requestContext: sharedContext }]);
});
