import assert from "node:assert/strict";
import { test } from "node:test";

import { HttpClient, KvCluster } from "../../../bench/raft/cluster.js";
import { readBack } from "./read-back.js";

const writersCount = 8;
const keysCount = 2_600;

test("a member killed and restarted loads its own snapshot and serves every key", async (t) => {
  // A snapshot every 500 entries: the restarted member loads the one near 2,500 and
  // replays only the log after it.
  const cluster = await KvCluster.start({ size: 3, snapshotEvery: 500 });
  t.after(() => cluster.close());
  const client = new HttpClient(64);
  t.after(() => client.close());

  const leader = await cluster.leader();
  const acked = new Map<string, string>();
  let next = 0;
  const writer = async (): Promise<void> => {
    while (next < keysCount) {
      const key = `k${next}`;
      next += 1;
      const value = `value of ${key}`;
      const answer = await client.call("POST", cluster.url(leader, "/put"), { key, value });
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      acked.set(key, value);
    }
  };
  await Promise.all(Array.from({ length: writersCount }, () => writer()));

  const follower = cluster.members.find((member) => member.id !== leader)?.id ?? 0;
  await cluster.kill(follower);
  // Restarting replays the latest snapshot (restore) and then the log after it.
  await cluster.startMember(follower);
  assert.deepEqual(await readBack(cluster, client, follower, acked), []);
});
