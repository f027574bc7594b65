import assert from "node:assert/strict";
import { test } from "node:test";

import { newMessage } from "../../../src/raft/core/message.js";
import type { Entry, Message } from "../../../src/raft/core/types.js";
import { CommitNoticeHold } from "../../../src/raft/node/commit-notices.js";
import { FakeClock } from "../../helpers/fake-clock.js";

const entry = (index: number): Entry => ({ term: 2, index, type: "normal", data: Buffer.from(`e${index}`) });
const append = (to: number, fields: Partial<Message>): Message => newMessage({ type: "app", from: 1, to, term: 2, ...fields });

function hold(): { clock: FakeClock; sent: Message[][]; notices: CommitNoticeHold } {
  const clock = new FakeClock();
  const sent: Message[][] = [];
  const notices = new CommitNoticeHold({ clock, delayMs: 2, send: (messages) => sent.push([...messages]) });
  return { clock, sent, notices };
}

test("a commit notice that the next append to its peer carries forward is never sent", () => {
  const { clock, sent, notices } = hold();
  notices.send([append(2, { index: 5, commit: 5 }), append(3, { index: 5, commit: 5 })]);
  assert.deepEqual(sent, []);
  const batch2 = append(2, { index: 5, commit: 5, entries: [entry(6)] });
  const batch3 = append(3, { index: 5, commit: 5, entries: [entry(6)] });
  notices.send([batch2, batch3]);
  assert.deepEqual(sent, [[batch2, batch3]]);
  clock.advance(10);
  assert.deepEqual(sent, [[batch2, batch3]], "nothing is held any more");
  assert.equal(clock.pendingTimers, 0);
});

test("a held commit notice goes out when the delay passes with no append to carry it", () => {
  const { clock, sent, notices } = hold();
  const notice = append(2, { index: 5, commit: 5 });
  const heartbeat = newMessage({ type: "heartbeat", from: 1, to: 2, term: 2, commit: 5 });
  notices.send([notice, heartbeat]);
  assert.deepEqual(sent, [[heartbeat]], "other messages are not held");
  clock.advance(1);
  assert.deepEqual(sent, [[heartbeat]]);
  clock.advance(1);
  assert.deepEqual(sent, [[heartbeat], [notice]]);
  assert.equal(clock.pendingTimers, 0, "nothing left held");
});

test("a newer notice replaces a held one; one of another term does not", () => {
  const { clock, sent, notices } = hold();
  const older = append(2, { index: 5, commit: 4 });
  const newer = append(2, { index: 5, commit: 5 });
  notices.send([older]);
  notices.send([newer]);
  clock.advance(2);
  assert.deepEqual(sent, [[newer]]);
  const termTwo = append(2, { index: 6, commit: 6 });
  const termThree = append(2, { index: 6, commit: 6, term: 3, entries: [entry(7)] });
  notices.send([termTwo]);
  notices.send([termThree]);
  assert.deepEqual(sent.at(-1), [termTwo, termThree], "the held notice goes first, in order");
});

test("clear() forgets held notices and stops the timer", () => {
  const { clock, sent, notices } = hold();
  notices.send([append(2, { index: 5, commit: 5 })]);
  notices.clear();
  assert.equal(clock.pendingTimers, 0);
  clock.advance(10);
  assert.deepEqual(sent, []);
});
