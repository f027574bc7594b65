import assert from "node:assert/strict";
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

import { FailedPreconditionError } from "../../../src/common/errors.js";
import { loadTlsMaterial, saveTlsMaterial, tlsFiles } from "../../../src/rpc/tls/index.js";
import { newAuthority, nodeMaterial } from "./fixtures.js";

test("TLS material saves with a private key file and loads back unchanged", async (t) => {
  const directory = await mkdtemp(join(tmpdir(), "shoal-tls-"));
  t.after(() => rm(directory, { recursive: true, force: true }));
  const certificates = join(directory, "certificates");
  assert.equal(await loadTlsMaterial(certificates), undefined);
  const material = nodeMaterial(newAuthority(), { nodeId: "node1", role: "worker" });
  await saveTlsMaterial(certificates, material);
  assert.equal((await stat(join(certificates, tlsFiles.node))).mode & 0o777, 0o600);
  assert.equal((await stat(certificates)).mode & 0o777, 0o700);
  assert.deepEqual(await loadTlsMaterial(certificates), material);
});

test("a directory holding only part of the material is refused", async (t) => {
  const directory = await mkdtemp(join(tmpdir(), "shoal-tls-"));
  t.after(() => rm(directory, { recursive: true, force: true }));
  const material = nodeMaterial(newAuthority(), { nodeId: "node1", role: "worker" });
  await writeFile(join(directory, tlsFiles.ca), material.caPem);
  await assert.rejects(loadTlsMaterial(directory), FailedPreconditionError);
  await writeFile(join(directory, tlsFiles.node), material.certPem);
  await assert.rejects(loadTlsMaterial(directory), FailedPreconditionError);
});
