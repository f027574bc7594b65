import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { once } from "node:events";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { gzipSync } from "node:zlib";

import type { Clock } from "../../../src/common/clock.js";
import { systemClock } from "../../../src/common/clock.js";
import { NotFoundError, NotImplementedError, UnavailableError } from "../../../src/common/errors.js";
import { buildTar } from "../../../src/engine/archive/index.js";
import { sha256Digest, type Descriptor } from "../../../src/engine/content/index.js";
import { mediaTypes, openImageService } from "../../../src/engine/images/index.js";
import { createRegistryClient, parseReference, registryBlobIdleTimeoutMs } from "../../../src/engine/registry/index.js";
import { isRoot, rootSkipReason, tempRoot, testLogger } from "../fixtures/engine-root.js";
import { registrySkipReason, startRegistry, startServer } from "../fixtures/registry.js";

/** A clock whose timers fire only when the test says so. */
function manualClock(): Clock & { fire(ms: number): void } {
  const timers = new Set<{ ms: number; callback: () => void }>();
  return {
    now: () => 0,
    sleep: () => Promise.resolve(),
    setTimer(ms, callback) {
      const timer = { ms, callback };
      timers.add(timer);
      return () => timers.delete(timer);
    },
    fire(ms) {
      for (const timer of [...timers]) {
        if (timer.ms !== ms) continue;
        timers.delete(timer);
        timer.callback();
      }
    },
  };
}

test("a blob download that stalls is aborted after the idle timeout", async (t) => {
  const stalled = await startServer((_incoming, response) => {
    response.writeHead(200, { "content-length": "100" });
    response.write(Buffer.alloc(10));
  });
  t.after(() => stalled.stop());
  const clock = manualClock();
  const client = createRegistryClient({ logger: testLogger(), clock });
  const descriptor: Descriptor = { mediaType: "application/octet-stream", digest: sha256Digest("x"), size: 100 };
  const body = await client.openBlob(parseReference(`${stalled.address}/slow:1`), descriptor);
  const iterator = body[Symbol.asyncIterator]();
  const first = await iterator.next();
  assert.equal(first.done, false);
  const second = iterator.next();
  clock.fire(registryBlobIdleTimeoutMs);
  await assert.rejects(second, UnavailableError);
});

const registrySkip = registrySkipReason !== false ? registrySkipReason : isRoot ? false : rootSkipReason;

test("an index is resolved to the requested platform; zstd layers are refused before download", { skip: registrySkip }, async (t) => {
  const root = await tempRoot(t);
  await mkdir(join(root, "registry"));
  const registry = await startRegistry(join(root, "registry"));
  t.after(() => registry.stop());
  const client = createRegistryClient({ logger: testLogger(), clock: systemClock });
  const ref = parseReference(`${registry.address}/multi/app:1`);
  const upload = async (mediaType: string, bytes: Buffer): Promise<Descriptor> => {
    const descriptor = { mediaType, digest: sha256Digest(bytes), size: bytes.length };
    await client.pushBlob(ref, descriptor, () => Promise.resolve([bytes]));
    return descriptor;
  };
  const manifests: Descriptor[] = [];
  for (const architecture of ["arm64", "amd64"]) {
    const tar = await buildTar([{ entry: { path: "arch", type: "file", size: architecture.length }, body: Buffer.from(architecture) }]);
    const layer = await upload(mediaTypes.ociLayerGzip, gzipSync(tar));
    const config = await upload(mediaTypes.ociConfig, Buffer.from(JSON.stringify({ architecture, os: "linux", rootfs: { type: "layers", diff_ids: [sha256Digest(tar)] } })));
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: mediaTypes.ociManifest, config, layers: [layer] }));
    const digest = await client.putManifest(ref, sha256Digest(manifest), { mediaType: mediaTypes.ociManifest, bytes: manifest });
    manifests.push({ mediaType: mediaTypes.ociManifest, digest, size: manifest.length, platform: { os: "linux", architecture } });
  }
  const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: mediaTypes.ociIndex, manifests }));
  await client.putManifest(ref, "1", { mediaType: mediaTypes.ociIndex, bytes: index });

  const images = await openImageService({ root: join(root, "engine"), logger: testLogger(), clock: systemClock, platform: { os: "linux", architecture: "amd64" } });
  const amd64 = await images.pull(`${registry.address}/multi/app:1`);
  assert.equal(amd64.platform.architecture, "amd64");
  assert.equal(amd64.digest, manifests[1]?.digest);
  const arm64 = await images.pull(`${registry.address}/multi/app:1`, { platform: { os: "linux", architecture: "arm64" } });
  assert.equal(arm64.digest, manifests[0]?.digest);
  await assert.rejects(images.pull(`${registry.address}/multi/app:1`, { platform: { os: "linux", architecture: "s390x" } }), (error: unknown) => error instanceof NotFoundError && /it has: linux\/arm64, linux\/amd64/u.test(error.message));

  const zstdLayer = await upload(mediaTypes.ociLayerZstd, Buffer.from("not really zstd"));
  const zstdConfig = await upload(mediaTypes.ociConfig, Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [sha256Digest("x")] } })));
  const zstdManifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: mediaTypes.ociManifest, config: zstdConfig, layers: [zstdLayer] }));
  await client.putManifest(ref, "zstd", { mediaType: mediaTypes.ociManifest, bytes: zstdManifest });
  await assert.rejects(images.pull(`${registry.address}/multi/app:zstd`), (error: unknown) => error instanceof NotImplementedError && /zstd/u.test(error.message));
});

/** A CA and a server certificate for `address` (an IP), made with openssl in `directory`. */
function issueServerCertificate(directory: string, address: string): { caPath: string; key: Buffer; cert: Buffer } {
  const file = (name: string): string => join(directory, name);
  const openssl = (...args: string[]): void => {
    execFileSync("openssl", args, { stdio: "ignore" });
  };
  openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", file("ca.key"), "-out", file("ca.crt"), "-subj", "/CN=shoal test site CA", "-days", "2");
  openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", file("server.key"), "-out", file("server.csr"), "-subj", "/CN=registry");
  writeFileSync(file("san.ext"), `subjectAltName=IP:${address}\n`);
  openssl("x509", "-req", "-in", file("server.csr"), "-CA", file("ca.crt"), "-CAkey", file("ca.key"), "-CAcreateserial", "-out", file("server.crt"), "-days", "2", "-extfile", file("san.ext"));
  return { caPath: file("ca.crt"), key: readFileSync(file("server.key")), cert: readFileSync(file("server.crt")) };
}

/** This host's address on its default route: not loopback, so the client speaks HTTPS to it. */
function routableAddress(): string | undefined {
  try {
    return /src (\d+\.\d+\.\d+\.\d+)/.exec(execFileSync("ip", ["-4", "-o", "route", "get", "1.1.1.1"], { encoding: "utf8" }))?.[1];
  } catch {
    return undefined;
  }
}

const opensslSkip = existsSync("/usr/bin/openssl") ? (routableAddress() === undefined ? "no routable IPv4 address" : false) : "openssl is not installed";

test("HTTPS registries are checked against the system's CA bundle, not Node's built-in CAs", { skip: opensslSkip }, async (t) => {
  const address = routableAddress() ?? "";
  const directory = mkdtempSync(join(tmpdir(), "shoal-registry-tls-"));
  t.after(() => rmSync(directory, { recursive: true, force: true }));
  const { caPath, key, cert } = issueServerCertificate(directory, address);
  const server = createHttpsServer({ key, cert }, (request, response) => {
    response.writeHead(request.url === "/v2/site/app/manifests/1" ? 404 : 400).end();
  });
  server.listen(0, address);
  await once(server, "listening");
  t.after(() => server.close());
  const port = (server.address() as AddressInfo).port;
  const ref = parseReference(`${address}:${port}/site/app:1`);
  // A site CA, as update-ca-certificates would have put it in the system bundle.
  const trusting = createRegistryClient({ logger: testLogger(), clock: systemClock, caBundlePaths: [join(directory, "missing.crt"), caPath] });
  assert.equal(await trusting.headManifest(ref, "1"), null, "the registry answered over TLS");
  // Node's built-in CAs (no bundle found) do not know the site's CA.
  const builtIn = createRegistryClient({ logger: testLogger(), clock: systemClock, caBundlePaths: [] });
  await assert.rejects(builtIn.headManifest(ref, "1"), (error: unknown) => error instanceof UnavailableError && /certificate/i.test(error.message));
});
