import assert from "node:assert/strict";
import { test } from "node:test";

import { field, HttpClient, KvCluster } from "../../../bench/raft/cluster.js";
import { waitFor } from "../../helpers/wait.js";

const writersCount = 8;
const ackedBeforeKill = 300;
const ackedAfterKill = 300;

/**
 * Reads every key through `member` (a linearizable ReadIndex read) and returns the
 * mismatches. "Unavailable" answers and refused connections are retried until the deadline:
 * a restarted member refuses reads until it has heard from the leader.
 */
async function readBack(cluster: KvCluster, client: HttpClient, member: number, acked: Map<string, string>): Promise<string[]> {
  const keys = [...acked.keys()];
  const problems: string[] = [];
  const deadline = Date.now() + 30_000;
  let next = 0;
  const readOne = async (key: string): Promise<void> => {
    for (;;) {
      let last: string;
      try {
        const answer = await client.call("GET", cluster.url(member, `/get?key=${encodeURIComponent(key)}`));
        const value = field(answer.body, "value");
        if (answer.status === 200 || answer.status === 404) {
          if (value !== acked.get(key)) problems.push(`${key}: expected ${acked.get(key)}, got ${answer.status} ${JSON.stringify(answer.body)}`);
          return;
        }
        last = `${answer.status} ${JSON.stringify(answer.body)}`;
      } catch (error) {
        last = String(error);
      }
      if (Date.now() > deadline) {
        problems.push(`${key}: member ${member} kept failing: ${last}`);
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  const reader = async (): Promise<void> => {
    while (next < keys.length) {
      const key = keys[next] ?? "";
      next += 1;
      await readOne(key);
    }
  };
  await Promise.all(Array.from({ length: 16 }, () => reader()));
  return problems;
}

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
