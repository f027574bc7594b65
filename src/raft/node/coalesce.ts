import type { Message, NodeId } from "../core/types.js";

/** Messages a Ready holds at most for a pairwise check to beat building the maps below. */
const pairwiseCheckMessagesMax = 16;

/**
 * Whether two messages go to the same peer (otherwise nothing can be coalesced). A leader's
 * Ready at one proposal at a time holds one append per follower: answering that without
 * allocating saves two maps per Ready.
 */
function repeatsRecipient(messages: readonly Message[]): boolean {
  if (messages.length > pairwiseCheckMessagesMax) return true;
  for (let later = 1; later < messages.length; later += 1) {
    for (let earlier = 0; earlier < later; earlier += 1) {
      if (messages[later]?.to === messages[earlier]?.to) return true;
    }
  }
  return false;
}

/**
 * Drops the messages of one Ready that a later message of the same Ready to the same peer
 * makes redundant, so that a burst of commits or acknowledgements costs one message per
 * peer instead of one per event:
 *  - an empty append (a leader's commit notice or probe) followed by another append of the
 *    same term, which carries a commit index at least as high;
 *  - an accepted append answer followed by an accepted one of the same term for an index at
 *    least as high, which acknowledges everything the earlier one did.
 * Dropping them is indistinguishable from losing them on the network, which raft tolerates;
 * nothing waits for an answer to an empty append. Everything else is kept, in order.
 */
export function coalesceMessages(messages: readonly Message[]): readonly Message[] {
  if (messages.length < 2 || !repeatsRecipient(messages)) return messages;
  const lastAppend = new Map<NodeId, Message>();
  const lastAccept = new Map<NodeId, Message>();
  const kept: Message[] = [];
  for (let position = messages.length - 1; position >= 0; position -= 1) {
    const message = messages[position];
    if (message === undefined) continue;
    if (message.type === "app") {
      const later = lastAppend.get(message.to);
      if (later === undefined) lastAppend.set(message.to, message);
      else if (message.entries.length === 0 && later.term === message.term && later.commit >= message.commit) continue;
    } else if (message.type === "app-resp" && !message.reject) {
      const later = lastAccept.get(message.to);
      if (later === undefined) lastAccept.set(message.to, message);
      else if (later.term === message.term && later.index >= message.index) continue;
    }
    kept.push(message);
  }
  return kept.length === messages.length ? messages : kept.reverse();
}
