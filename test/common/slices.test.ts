import assert from "node:assert/strict";
import { test } from "node:test";

import { visitInSlices } from "../../src/common/slices.js";

test("slices cover the parts in order, at most sliceBytes per turn of the event loop, across part boundaries", async () => {
  const parts = [Buffer.from("abcde"), Buffer.alloc(0), Buffer.from("fgh"), Buffer.from("ijklmnopq")];
  const turnsSeen: string[][] = [[]];
  let turn = 0;
  let done = false;
  const countTurns = (): void => {
    if (done) return;
    turn += 1;
    turnsSeen[turn] = [];
    setImmediate(countTurns);
  };
  setImmediate(countTurns);
  await visitInSlices(parts, 4, (slice) => turnsSeen[turn]?.push(Buffer.from(slice).toString()));
  done = true;
  // What each turn visited: 4 bytes at most, in order, a turn carrying on across parts.
  const visited = turnsSeen.filter((slices) => slices.length > 0).map((slices) => slices.join(""));
  assert.deepEqual(visited, ["abcd", "efgh", "ijkl", "mnop", "q"]);
});
