import type { HttpClient, KvCluster } from "../../../bench/raft/cluster.js";
import { field } from "../../../bench/raft/cluster.js";

/**
 * Reads every key through `member` (a linearizable ReadIndex read) and returns the
 * mismatches. "Unavailable" answers and refused connections are retried until the deadline:
 * a restarted member refuses reads until it has heard from the leader.
 */
export async function readBack(cluster: KvCluster, client: HttpClient, member: number, acked: Map<string, string>): Promise<string[]> {
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
