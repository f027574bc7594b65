import assert from "node:assert/strict";
import { test } from "node:test";

import { newMessage } from "../../../src/raft/core/message.js";
import type { Entry, Message } from "../../../src/raft/core/types.js";
import { coalesceMessages } from "../../../src/raft/node/coalesce.js";

const entry = (index: number): Entry => ({ term: 2, index, type: "normal", data: Buffer.from(`e${index}`) });
const append = (to: number, fields: Partial<Message>): Message => newMessage({ type: "app", from: 1, to, term: 2, ...fields });
const answer = (index: number, fields: Partial<Message> = {}): Message =>
  newMessage({ type: "app-resp", from: 2, to: 1, term: 2, index, ...fields });

test("empty appends (commit notices) before a later append to the same peer are dropped", () => {
  const notice2 = append(2, { index: 5, commit: 4 });
  const notice3 = append(3, { index: 5, commit: 4 });
  const again2 = append(2, { index: 5, commit: 5 });
  const batch2 = append(2, { index: 5, commit: 5, entries: [entry(6), entry(7)] });
  const batch3 = append(3, { index: 5, commit: 5, entries: [entry(6), entry(7)] });
  assert.deepEqual(coalesceMessages([notice2, notice3, again2, batch2, batch3]), [batch2, batch3]);
});

test("an empty append that nothing follows, or that a newer term follows, is kept", () => {
  const notice = append(2, { index: 5, commit: 5 });
  const heartbeat = newMessage({ type: "heartbeat", from: 1, to: 2, term: 2, commit: 5 });
  assert.deepEqual(coalesceMessages([notice, heartbeat]), [notice, heartbeat]);
  const otherTerm = append(2, { index: 5, commit: 5, term: 3, entries: [entry(6)] });
  assert.deepEqual(coalesceMessages([notice, otherTerm]), [notice, otherTerm]);
});

test("appends that carry entries are never dropped, even when another follows", () => {
  const first = append(2, { index: 5, commit: 5, entries: [entry(6)] });
  const second = append(2, { index: 6, commit: 5, entries: [entry(7)] });
  assert.deepEqual(coalesceMessages([first, second]), [first, second]);
});

test("accepted answers superseded by a later accepted answer are dropped; rejections are kept", () => {
  const rejection = answer(9, { reject: true, rejectHint: 4 });
  const messages = [answer(6), answer(7), rejection, answer(8), answer(8)];
  const kept = coalesceMessages(messages);
  assert.deepEqual(kept, [rejection, messages[4]]);
  // A higher answer earlier than a lower one (an older duplicate) keeps both: nothing is subsumed.
  assert.deepEqual(coalesceMessages([answer(9), answer(7)]), [answer(9), answer(7)]);
});
