import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";

import { InvalidArgumentError, ResourceExhaustedError } from "../../../src/common/errors.js";
import { buildTar, encodeTarHeader, readTar, tarEnd, tarPadding, type TarEntry } from "../../../src/engine/archive/index.js";
import { bytesSource, tempRoot } from "../fixtures/engine-root.js";

async function readAll(archive: Buffer, chunkBytes = archive.length): Promise<{ entry: TarEntry; body: string }[]> {
  const chunks: Buffer[] = [];
  for (let offset = 0; offset < archive.length; offset += chunkBytes) chunks.push(archive.subarray(offset, offset + chunkBytes));
  const found: { entry: TarEntry; body: string }[] = [];
  for await (const entry of readTar(bytesSource(...chunks))) {
    const parts: Buffer[] = [];
    for await (const part of entry.body()) parts.push(part);
    found.push({ entry, body: Buffer.concat(parts).toString() });
  }
  return found;
}

/** A GNU-format header block ("ustar  \0" magic) built by hand, as GNU tar writes it. */
function gnuHeader(name: string, flag: string, size: number): Buffer {
  const block = Buffer.alloc(512);
  block.write(name, 0, 100);
  block.write("0000644\0", 100);
  block.write("0000000\0", 108);
  block.write("0000000\0", 116);
  block.write(`${size.toString(8).padStart(11, "0")}\0`, 124);
  block.write("00000000000\0", 136);
  block.write(flag, 156);
  block.write("ustar  \0", 257, "latin1");
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "latin1");
  return block;
}

/** A copy of a header block with another type flag and a fixed checksum. */
function withFlag(header: Buffer, flag: string): Buffer {
  const block = Buffer.from(header);
  block.write(flag, 156, "latin1");
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "latin1");
  return block;
}

test("writer and reader round-trip every entry type, long paths via pax, across chunk boundaries", async () => {
  const longPath = `${"deep/".repeat(40)}file.txt`;
  const longTarget = `${"t/".repeat(80)}target`;
  const archive = await buildTar([
    { entry: { path: "dir", type: "directory", mode: 0o1777, mtime: 1234 } },
    { entry: { path: "dir/file", type: "file", mode: 0o4755, uid: 1000, gid: 2000, size: 5, mtime: 99 }, body: Buffer.from("hello") },
    { entry: { path: longPath, type: "file", size: 3 }, body: Buffer.from("abc") },
    { entry: { path: "sym", type: "symlink", linkpath: longTarget } },
    { entry: { path: "hard", type: "hardlink", linkpath: "dir/file" } },
    { entry: { path: "dev", type: "char-device", devmajor: 4, devminor: 7 } },
    { entry: { path: "x", type: "file", size: 1, uid: 0o10000000, pax: { "SCHILY.xattr.user.k": "v" } }, body: Buffer.from("x") },
  ]);
  for (const chunkBytes of [archive.length, 7, 512, 1000]) {
    const found = await readAll(archive, chunkBytes);
    assert.deepEqual(found.map(({ entry }) => entry.path), ["dir/", "dir/file", longPath, "sym", "hard", "dev", "x"]);
    const [dir, file, long, sym, hard, dev, x] = found;
    assert.equal(dir?.entry.type, "directory");
    assert.equal(dir?.entry.mode, 0o1777);
    assert.equal(file?.body, "hello");
    assert.equal(file?.entry.mode, 0o4755);
    assert.equal(file?.entry.uid, 1000);
    assert.equal(file?.entry.mtime, 99);
    assert.equal(long?.body, "abc");
    assert.equal(sym?.entry.linkpath, longTarget);
    assert.equal(hard?.entry.type, "hardlink");
    assert.equal(dev?.entry.devminor, 7);
    assert.equal(x?.entry.uid, 0o10000000, "large ids travel in pax records");
    assert.equal(x?.entry.xattrs.get("user.k")?.toString(), "v");
  }
});

test("GNU long names and long links are read", async () => {
  const name = `${"n".repeat(150)}/file`;
  const target = `${"l".repeat(200)}`;
  const nameBody = Buffer.from(`${name}\0`);
  const linkBody = Buffer.from(`${target}\0`);
  const archive = Buffer.concat([
    gnuHeader("././@LongLink", "L", nameBody.length),
    nameBody,
    tarPadding(nameBody.length),
    gnuHeader("././@LongLink", "K", linkBody.length),
    linkBody,
    tarPadding(linkBody.length),
    gnuHeader("short", "2", 0),
    tarEnd(),
  ]);
  const [entry] = await readAll(archive);
  assert.equal(entry?.entry.path, name);
  assert.equal(entry?.entry.linkpath, target);
  assert.equal(entry?.entry.type, "symlink");
});

test("the reader reads what GNU tar writes", { skip: spawnSync("tar", ["--version"]).status === 0 ? false : "tar not installed" }, async (t) => {
  const root = await tempRoot(t);
  const source = join(root, "src");
  const longDir = "x".repeat(120);
  await mkdir(join(source, longDir), { recursive: true });
  await writeFile(join(source, longDir, "data"), "gnu");
  for (const format of ["gnu", "pax", "ustar"]) {
    const made = spawnSync("tar", [`--format=${format}`, "-C", source, "-c", "."], { maxBuffer: 1 << 24 });
    if (format === "ustar") {
      // ustar cannot hold a 120-byte directory name without a prefix split; tar refuses.
      continue;
    }
    assert.equal(made.status, 0, made.stderr.toString());
    const found = await readAll(made.stdout);
    const data = found.find(({ entry }) => entry.path.endsWith("/data"));
    assert.equal(data?.entry.path, `./${longDir}/data`, `${format} long path`);
    assert.equal(data?.body, "gnu");
  }
});

test("unread bodies are skipped, so a reader may look only at headers", async () => {
  const archive = await buildTar([
    { entry: { path: "big", type: "file", size: 3000 }, body: Buffer.alloc(3000, 1) },
    { entry: { path: "after", type: "file", size: 2 }, body: Buffer.from("ok") },
  ]);
  const paths: string[] = [];
  for await (const entry of readTar(bytesSource(archive))) paths.push(entry.path);
  assert.deepEqual(paths, ["big", "after"]);
});

test("bad checksums, truncation, oversize pax headers and too many headers are refused", async () => {
  const good = await buildTar([{ entry: { path: "a", type: "file", size: 600 }, body: Buffer.alloc(600) }]);
  const corrupt = Buffer.from(good);
  corrupt[10] = 0x41;
  await assert.rejects(readAll(corrupt), /bad checksum/u);
  await assert.rejects(readAll(good.subarray(0, 700)), InvalidArgumentError);
  const paxBody = Buffer.alloc(2 * 1024 * 1024);
  const paxHeader = withFlag(encodeTarHeader({ path: "p", type: "file", size: paxBody.length }), "x");
  await assert.rejects(readAll(Buffer.concat([paxHeader, paxBody, tarEnd()])), ResourceExhaustedError);
  const many = await buildTar(Array.from({ length: 20 }, (_, index) => ({ entry: { path: `f${index}`, type: "file" as const, size: 0 }, body: Buffer.alloc(0) })));
  await assert.rejects(
    (async () => {
      for await (const entry of readTar(bytesSource(many), { headersMax: 10 })) assert.ok(entry.path.length > 0);
    })(),
    /more than 10 entries/u,
  );
  const unknownType = withFlag(good.subarray(0, 512), "S");
  await assert.rejects(readAll(Buffer.concat([unknownType, tarEnd()])), /unsupported tar entry type "S"/u);
});
