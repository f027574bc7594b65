import type { NodeId } from "./types.js";

export type VoteResult = "pending" | "won" | "lost";

/**
 * The highest index that a majority of `voters` has acknowledged: sort the match indexes
 * descending and take the one at the majority position. An empty voter set commits nothing
 * new (Infinity would let a learner-only node commit on its own).
 */
export function majorityCommittedIndex(voters: readonly NodeId[], matchOf: (id: NodeId) => number): number {
  if (voters.length === 0) return 0;
  const matches = voters.map(matchOf).sort((a, b) => b - a);
  const quorumPosition = Math.floor(voters.length / 2);
  return matches[quorumPosition] ?? 0;
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
