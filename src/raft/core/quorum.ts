import type { NodeId } from "./types.js";

export type VoteResult = "pending" | "won" | "lost";

/**
 * The highest index that a majority of `voters` has acknowledged: the largest match index
 * that at least a quorum of voters has reached. Counted pairwise rather than by sorting a
 * copy: a leader asks on every acknowledgement, and Array.prototype.sort with a comparator
 * allocated about 1 KB per call (most of the bytes a put cost the leader's core); voter
 * sets are a handful of members. An empty voter set commits nothing new (Infinity would
 * let a learner-only node commit on its own).
 */
export function majorityCommittedIndex(voters: readonly NodeId[], matchOf: (id: NodeId) => number): number {
  const quorum = Math.floor(voters.length / 2) + 1;
  let committed = 0;
  for (const candidate of voters) {
    const index = matchOf(candidate);
    if (index <= committed) continue;
    let reached = 0;
    for (const other of voters) if (matchOf(other) >= index) reached += 1;
    if (reached >= quorum) committed = index;
  }
  return committed;
}

/** Whether the votes recorded so far decide an election among `voters`. */
export function majorityVoteResult(voters: readonly NodeId[], votes: ReadonlyMap<NodeId, boolean>): VoteResult {
  if (voters.length === 0) return "won";
  let granted = 0;
  let missing = 0;
  for (const id of voters) {
    const vote = votes.get(id);
    if (vote === undefined) missing += 1;
    else if (vote) granted += 1;
  }
  const quorum = Math.floor(voters.length / 2) + 1;
  if (granted >= quorum) return "won";
  if (granted + missing >= quorum) return "pending";
  return "lost";
}
