import type { Clock } from "../../common/clock.js";
import type { Message, NodeId } from "../core/types.js";

/**
 * How long a leader holds a commit notice back. Long enough for the next proposal of a
 * client that waits for each answer (a loopback round trip and a Ready, well under a
 * millisecond) to carry the commit index instead; short enough that followers still learn
 * commits promptly when the leader goes quiet (a follower's ReadIndex also learns it from
 * the leader's heartbeat, so reads do not wait for this).
 */
export const commitNoticeDelayMs = 2;

/** An append without entries: the leader telling a follower its new commit index (or a probe). */
function isCommitNotice(message: Message): boolean {
  return message.type === "app" && message.entries.length === 0 && message.snapshot === null;
}

/** Whether `later`, to the same peer, tells everything `earlier` (an empty append) did. */
function supersedes(later: Message, earlier: Message): boolean {
  return later.type === "app" && later.term === earlier.term && later.commit >= earlier.commit;
}

/**
 * Holds a leader's commit notices back for a moment, so that the next append to the same
 * peer, which carries the commit index too, replaces them. After each commit the leader
 * sends every follower an empty append with the new commit index, and every follower
 * answers it: with one proposal in flight at a time that doubled the messages per
 * proposal, and the notices of one proposal were being handled by the followers just as
 * the next proposal's append arrived. A dropped notice is, to raft, a lost message; a held
 * one is a delayed message, both of which raft tolerates.
 */
export class CommitNoticeHold {
  readonly #held = new Map<NodeId, Message>();
  readonly #clock: Clock;
  readonly #delayMs: number;
  readonly #send: (messages: readonly Message[]) => void;
  #cancelTimer: (() => void) | null = null;

  constructor(options: { clock: Clock; delayMs: number; send: (messages: readonly Message[]) => void }) {
    this.#clock = options.clock;
    this.#delayMs = options.delayMs;
    this.#send = options.send;
  }

  /**
   * Sends `messages` in order, except commit notices, which are held until the timer or a
   * superseding append. A held notice that a later message does not supersede goes out
   * before that message.
   */
  send(messages: readonly Message[]): void {
    if (this.#held.size === 0 && !messages.some(isCommitNotice)) {
      // Nothing to hold or release (appends with entries, at one proposal at a time): the
      // batch goes as it is, without a copy.
      if (messages.length > 0) this.#send(messages);
      return;
    }
    const now: Message[] = [];
    for (const message of messages) {
      const held = this.#held.get(message.to);
      if (isCommitNotice(message)) {
        if (held !== undefined && !supersedes(message, held)) now.push(held);
        this.#held.set(message.to, message);
        continue;
      }
      if (held !== undefined && message.type === "app") {
        this.#held.delete(message.to);
        if (!supersedes(message, held)) now.push(held);
      }
      now.push(message);
    }
    if (now.length > 0) this.#send(now);
    if (this.#held.size > 0 && this.#cancelTimer === null) {
      this.#cancelTimer = this.#clock.setTimer(this.#delayMs, () => {
        this.#cancelTimer = null;
        this.#flush();
      });
    }
  }

  #flush(): void {
    if (this.#held.size === 0) return;
    const held = [...this.#held.values()];
    this.#held.clear();
    this.#send(held);
  }

  /** Forgets the held notices (lost messages, to raft) and stops the timer. */
  clear(): void {
    this.#cancelTimer?.();
    this.#cancelTimer = null;
    this.#held.clear();
  }
}
