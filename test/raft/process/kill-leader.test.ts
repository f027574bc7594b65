import assert from "node:assert/strict";
import { test } from "node:test";

import { HttpClient, KvCluster } from "../../../bench/raft/cluster.js";
import { waitFor } from "../../helpers/wait.js";
import { readBack } from "./read-back.js";

const writersCount = 8;
const ackedBeforeKill = 300;
const ackedAfterKill = 300;

test("kill -9 of the leader in the middle of a write stream loses no acknowledged write", async (t) => {
  const cluster = await KvCluster.start({ size: 3 });
  t.after(() => cluster.close());
  const client = new HttpClient(64);
  t.after(() => client.close());

  const acked = new Map<string, string>();
  let leader = await cluster.leader();
  let stop = false;
  let attempts = 0;
  const writer = async (writer: number): Promise<void> => {
    for (let sequence = 0; !stop; sequence += 1) {
      const key = `w${writer}-${sequence}`;
      const value = `value of ${key} at attempt ${attempts}`;
      attempts += 1;
      try {
        const answer = await client.call("POST", cluster.url(leader, "/put"), { key, value }, 5_000);
        if (answer.status === 200) {
          acked.set(key, value);
          continue;
        }
      } catch {
        // The leader died under this request: not acknowledged, so nothing to check.
      }
      leader = await cluster.leader(20_000);
    }
  };
  const writers = Array.from({ length: writersCount }, (_, i) => writer(i));
  try {
    await waitFor("writes before the kill", () => (acked.size >= ackedBeforeKill ? true : undefined), { timeoutMs: 30_000 });
    const killed = leader;
    const ackedAtKill = acked.size;
    await cluster.kill(killed);
    await waitFor("writes after the kill", () => (acked.size >= ackedAtKill + ackedAfterKill ? true : undefined), { timeoutMs: 30_000 });
    stop = true;
    await Promise.all(writers);

    const newLeader = await cluster.leader();
    assert.notEqual(newLeader, killed);
    assert.deepEqual(await readBack(cluster, client, newLeader, acked), []);

    await cluster.startMember(killed);
    // A read through the restarted member waits until it applied the leader's commit index.
    assert.deepEqual(await readBack(cluster, client, killed, acked), []);
  } finally {
    stop = true;
    await Promise.allSettled(writers);
  }
});
