import assert from "node:assert/strict";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";

import { ConflictError, InvalidArgumentError, NotFoundError, ResourceExhaustedError } from "../../../src/common/errors.js";
import { openContentStore, parseDigest, sha256Digest } from "../../../src/engine/content/index.js";
import { bytesSource, tempRoot, testLogger } from "../fixtures/engine-root.js";

async function leftovers(root: string): Promise<string[]> {
  return [...(await readdir(join(root, "content", "ingest"))), ...(await readdir(join(root, "content", "blobs", "sha256")))];
}

test("digests are validated before any use as a path", () => {
  const valid = `sha256:${"a".repeat(64)}`;
  assert.equal(parseDigest(valid), valid);
  for (const bad of [`sha256:${"A".repeat(64)}`, `sha256:../../${"a".repeat(58)}`, `sha512:${"a".repeat(64)}`, "sha256:abc", 42, `sha256:${"a".repeat(64)}\n`]) {
    assert.throws(() => parseDigest(bad), InvalidArgumentError, String(bad));
  }
});

test("a blob is committed only with the declared size and digest", async (t) => {
  const root = await tempRoot(t);
  const store = await openContentStore({ root, logger: testLogger() });
  const data = Buffer.from("hello blob");
  const digest = sha256Digest(data);

  const wrong = await store.writer("wrong", { digest, size: data.length });
  await wrong.write(Buffer.from("jello blob"));
  await assert.rejects(wrong.commit(), /expected/u);
  assert.deepEqual(await leftovers(root), [], "a digest mismatch leaves no partial blob");

  const long = await store.writer("long", { digest, size: data.length });
  await assert.rejects(long.write(Buffer.concat([data, Buffer.from("!")])), /larger than its declared size/u);
  assert.deepEqual(await leftovers(root), [], "reading stops at the declared size");

  const short = await store.writer("short", { digest, size: data.length });
  await short.write(data.subarray(0, 3));
  await assert.rejects(short.commit(), /has 3 bytes/u);

  const good = await store.writer("good", { digest, size: data.length });
  await good.write(data);
  assert.deepEqual(await good.commit(), { digest, size: data.length });
  assert.deepEqual(await store.readBlob(digest, 100), data);
  await assert.rejects(store.readBlob(digest, 5), ResourceExhaustedError);
  assert.deepEqual(await store.list(), [{ digest, size: data.length }]);
  await store.delete(digest);
  await assert.rejects(store.open(digest), NotFoundError);
});

test("one ref has one writer at a time", async (t) => {
  const store = await openContentStore({ root: await tempRoot(t), logger: testLogger() });
  const first = await store.writer("same", { digest: sha256Digest("x"), size: 1 });
  await assert.rejects(store.writer("same", { digest: sha256Digest("x"), size: 1 }), ConflictError);
  await first.abort();
  const again = await store.writer("same", { digest: sha256Digest("x"), size: 1 });
  await again.abort();
});

test("concurrent ensures of one digest fetch once; present blobs are not fetched", async (t) => {
  const store = await openContentStore({ root: await tempRoot(t), logger: testLogger() });
  const data = Buffer.alloc(100_000, 7);
  const expected = { digest: sha256Digest(data), size: data.length };
  let fetches = 0;
  const fetch = async (): Promise<AsyncIterable<Buffer>> => {
    fetches += 1;
    await new Promise((resolve) => setImmediate(resolve));
    return bytesSource(data.subarray(0, 50_000), data.subarray(50_000));
  };
  const results = await Promise.all(Array.from({ length: 5 }, () => store.ensure(expected, fetch)));
  assert.equal(fetches, 1);
  assert.equal(results.filter((result) => result.transferred).length, 1);
  assert.deepEqual(await store.ensure(expected, fetch), { transferred: false });
  assert.equal(fetches, 1);
});

test("ingesting a computed digest stores the blob under the digest of its bytes", async (t) => {
  const store = await openContentStore({ root: await tempRoot(t), logger: testLogger() });
  const info = await store.ingestComputed(bytesSource(Buffer.from("a"), Buffer.from("b")));
  assert.deepEqual(info, { digest: sha256Digest("ab"), size: 2 });
  await assert.rejects(store.ingestComputed(bytesSource(Buffer.alloc(10)), { bytesMax: 5 }), /limit/u);
});
