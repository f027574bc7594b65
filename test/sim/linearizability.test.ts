import assert from "node:assert/strict";
import { test } from "node:test";

import { checkLinearizable, type Operation } from "./linearizability.js";

function put(client: number, value: string, invokedAt: number, returnedAt: number | null, key = "k"): Operation {
  return { client, kind: "put", key, value, invokedAt, returnedAt };
}

function get(client: number, value: string | null, invokedAt: number, returnedAt: number, key = "k"): Operation {
  return { client, kind: "get", key, value, invokedAt, returnedAt };
}

test("a sequential history that reads its writes is linearizable", () => {
  const history = [put(1, "a", 0, 1), get(2, "a", 2, 3), put(1, "b", 4, 5), get(2, "b", 6, 7)];
  assert.equal(checkLinearizable(history).ok, true);
});

test("a read of a value overwritten before the read began is rejected", () => {
  const history = [put(1, "a", 0, 1), put(1, "b", 2, 3), get(2, "a", 4, 5)];
  assert.deepEqual(checkLinearizable(history), { ok: false, key: "k" });
});

test("concurrent writes may be ordered either way", () => {
  const history = [put(1, "a", 0, 10), put(2, "b", 1, 9), get(3, "a", 11, 12)];
  assert.equal(checkLinearizable(history).ok, true);
  const other = [put(1, "a", 0, 10), put(2, "b", 1, 9), get(3, "b", 11, 12)];
  assert.equal(checkLinearizable(other).ok, true);
});

test("two reads that see the writes in opposite orders are rejected", () => {
  const history = [
    put(1, "a", 0, 10),
    put(2, "b", 0, 10),
    get(3, "a", 11, 12),
    get(3, "b", 13, 14),
    get(4, "a", 15, 16),
  ];
  assert.equal(checkLinearizable(history).ok, false);
});

test("a stale read after a completed write is rejected (the split-brain symptom)", () => {
  const history = [put(1, "a", 0, 1), get(2, null, 5, 6)];
  assert.equal(checkLinearizable(history).ok, false);
});

test("a put with an unknown outcome may take effect late or never", () => {
  const never = [put(1, "a", 0, 1), put(2, "b", 2, null), get(3, "a", 10, 11)];
  assert.equal(checkLinearizable(never).ok, true);
  const late = [put(1, "a", 0, 1), put(2, "b", 2, null), get(3, "a", 10, 11), get(3, "b", 20, 21)];
  assert.equal(checkLinearizable(late).ok, true);
  const flipFlop = [put(1, "a", 0, 1), put(2, "b", 2, null), get(3, "b", 10, 11), get(3, "a", 20, 21)];
  assert.equal(checkLinearizable(flipFlop).ok, false, "an unknown put still happens at most once");
});

test("keys are checked independently and the failing key is named", () => {
  const history = [put(1, "a", 0, 1, "x"), get(2, "a", 2, 3, "x"), put(1, "c", 0, 1, "y"), get(2, "d", 2, 3, "y")];
  assert.deepEqual(checkLinearizable(history), { ok: false, key: "y" });
});

test("a read of a value no one wrote is rejected", () => {
  assert.equal(checkLinearizable([get(1, "ghost", 0, 1)]).ok, false);
  assert.equal(checkLinearizable([get(1, null, 0, 1)]).ok, true);
});

test("a larger concurrent history stays fast thanks to memoization", () => {
  const history: Operation[] = [];
  for (let index = 0; index < 60; index += 1) {
    history.push(put(index % 4, `v${index}`, index * 2, index * 2 + 7));
    history.push(get(4 + (index % 3), `v${index}`, index * 2 + 1, index * 2 + 9));
  }
  const started = performance.now();
  assert.equal(checkLinearizable(history).ok, true);
  assert.ok(performance.now() - started < 2_000);
});
