// Flow control after an unreachable report (etcd heartbeat_resp_recovers_from_probing.txt).
import assert from "node:assert/strict";
import { test } from "node:test";

import { Network, entry, message, readMessages } from "./helpers.js";

test("a caught-up follower reported unreachable returns to replicate after one heartbeat round", () => {
  const network = Network.ofSize(3);
  network.campaign(1);
  network.propose(1, "a");
  const leader = network.node(1);
  const progress = (): { state: string; match: number } => {
    const follower = leader.tracker.progress.get(2) ?? assert.fail("no progress for 2");
    return { state: follower.state, match: follower.match };
  };
  const caughtUp = { state: "replicate", match: leader.log.lastIndex() };
  assert.deepEqual(progress(), caughtUp);
  leader.step(message({ type: "unreachable", from: 2, to: 1 }));
  assert.deepEqual(progress(), { ...caughtUp, state: "probe" });
  // Heartbeat -> answer -> empty append -> answer at the match index -> replicate.
  network.send(message({ type: "beat", from: 1, to: 1 }));
  assert.deepEqual(progress(), caughtUp);
  // Replicating, the leader streams each proposal at once instead of one append per round trip.
  for (const data of ["x", "y", "z"]) leader.step(message({ type: "prop", from: 1, to: 1, entries: [entry(0, 0, data)] }));
  const appends = readMessages(leader).filter((sent) => sent.type === "app" && sent.to === 2);
  assert.equal(appends.length, 3);
});
