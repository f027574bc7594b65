import assert from "node:assert/strict";
import { test } from "node:test";

import { crc32c } from "../../../src/raft/wal/crc32c.js";

test("crc32c matches the RFC 3720 check values", () => {
  assert.equal(crc32c(Buffer.from("123456789")), 0xe3069283);
  assert.equal(crc32c(Buffer.alloc(32, 0)), 0x8a9136aa);
  assert.equal(crc32c(Buffer.alloc(32, 0xff)), 0x62a8ab43);
  const ascending = Buffer.from(Array.from({ length: 32 }, (_, i) => i));
  assert.equal(crc32c(ascending), 0x46dd794e);
});

test("crc32c can be computed in pieces", () => {
  const bytes = Buffer.from("the quick brown fox jumps over the lazy dog, twice over");
  const whole = crc32c(bytes);
  for (let split = 0; split <= bytes.length; split += 1) {
    assert.equal(crc32c(bytes, crc32c(bytes, 0, 0, split), split), whole);
  }
});
