import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdir, readdir } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";

import { systemClock } from "../../../src/common/clock.js";
import { NotFoundError, UnauthenticatedError, UnavailableError } from "../../../src/common/errors.js";
import type { RegistryCredentials } from "../../../src/engine/registry/index.js";
import {
  buildDemoImages,
  demoBusyboxName,
  demoLayeredName,
  mediaTypes,
  openImageService,
  type ImageService,
  type PullProgress,
} from "../../../src/engine/images/index.js";
import { isRoot, rootSkipReason, tempRoot, testLogger } from "../fixtures/engine-root.js";
import { registrySkipReason, startProxy, startRegistry, startServer, type ProxyRequest } from "../fixtures/registry.js";

const skip = registrySkipReason !== false ? registrySkipReason : isRoot ? false : rootSkipReason;

async function service(root: string, credentials?: RegistryCredentials): Promise<ImageService> {
  return openImageService({
    root,
    logger: testLogger(),
    clock: systemClock,
    ...(credentials === undefined ? {} : { credentials: () => credentials }),
  });
}

function blobGets(requests: readonly ProxyRequest[]): ProxyRequest[] {
  return requests.filter((entry) => entry.method === "GET" && entry.path.includes("/blobs/"));
}

function manifestGets(requests: readonly ProxyRequest[]): ProxyRequest[] {
  return requests.filter((entry) => entry.method === "GET" && entry.path.includes("/manifests/"));
}

test("push to a real registry, remove locally, pull back with the same digests; a second pull transfers nothing", { skip }, async (t) => {
  const root = await tempRoot(t);
  await mkdir(join(root, "registry"));
  const registry = await startRegistry(join(root, "registry"));
  t.after(() => registry.stop());
  const proxy = await startProxy(registry.address);
  t.after(() => proxy.stop());
  const images = await service(join(root, "engine"));
  const { busybox, layered } = await buildDemoImages(images);
  const busyboxRef = `${proxy.address}/demo/busybox:1`;
  const layeredRef = `${proxy.address}/demo/busybox:layered`;
  await images.tag(demoBusyboxName, busyboxRef);
  await images.tag(demoLayeredName, layeredRef);
  assert.equal(await images.push(busyboxRef), busybox.digest);
  const pushed: boolean[] = [];
  assert.equal(await images.push(layeredRef, { onProgress: (event) => (event.type === "blob-pushed" ? pushed.push(event.uploaded) : undefined) }), layered.digest);
  assert.deepEqual(pushed, [true, false, true, true], "the base layer already in the repository is not uploaded again");

  for (const name of [busyboxRef, layeredRef, demoBusyboxName]) await images.remove(name);
  const removed = await images.remove(demoLayeredName);
  assert.ok(removed.deleted.includes(layered.id));
  assert.deepEqual(await readdir(join(root, "engine", "content", "blobs", "sha256")), [], "every blob is gone locally");

  proxy.requests.length = 0;
  const events: PullProgress[] = [];
  const pulled = await images.pull(busyboxRef, { onProgress: (event) => events.push(event) });
  assert.equal(pulled.digest, busybox.digest);
  assert.equal(pulled.id, busybox.id);
  assert.deepEqual(pulled.diffIds, busybox.diffIds);
  assert.ok(events.some((event) => event.type === "layer-downloaded"));
  assert.ok(blobGets(proxy.requests).length >= 2, "config and layer were downloaded");

  const layeredEvents: PullProgress[] = [];
  const pulledLayered = await images.pull(layeredRef, { onProgress: (event) => layeredEvents.push(event) });
  assert.equal(pulledLayered.digest, layered.digest);
  assert.equal(layeredEvents.filter((event) => event.type === "layer-exists").length, 1, "the base layer is shared with busybox");

  proxy.requests.length = 0;
  const again = await images.pull(busyboxRef);
  assert.equal(again.digest, busybox.digest);
  assert.deepEqual(blobGets(proxy.requests), [], "no blob transferred on the second pull");
  assert.deepEqual(manifestGets(proxy.requests), [], "the manifest is known by digest: HEAD only");

  await assert.rejects(images.pull(`${proxy.address}/demo/busybox:missing`), NotFoundError);
});

test("an unreachable registry gives UnavailableError naming it", async (t) => {
  const images = await service(await tempRoot(t));
  const closed = await startServer((_incoming, response) => response.end());
  await closed.stop();
  await assert.rejects(images.pull(`${closed.address}/x:1`), (error: unknown) => error instanceof UnavailableError && error.message.includes(closed.address));
});

test("a registry sending wrong blob bytes fails the pull and leaves no partial blob", async (t) => {
  const root = await tempRoot(t);
  const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [`sha256:${"c".repeat(64)}`] } }));
  const layer = Buffer.alloc(1000, 1);
  const sha = (data: Buffer): string => `sha256:${createHash("sha256").update(data).digest("hex")}`;
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: mediaTypes.ociManifest,
      config: { mediaType: mediaTypes.ociConfig, digest: sha(config), size: config.length },
      layers: [{ mediaType: mediaTypes.ociLayerGzip, digest: sha(layer), size: layer.length }],
    }),
  );
  const fake = await startServer((incoming, response) => {
    const url = incoming.url ?? "";
    if (url.includes("/manifests/")) {
      response.writeHead(200, { "content-type": mediaTypes.ociManifest, "docker-content-digest": sha(manifest), "content-length": manifest.length });
      response.end(incoming.method === "HEAD" ? undefined : manifest);
    } else if (url.endsWith(sha(config))) {
      response.end(config);
    } else if (url.endsWith(sha(layer))) {
      response.end(Buffer.alloc(layer.length, 2));
    } else {
      response.writeHead(404);
      response.end();
    }
  });
  t.after(() => fake.stop());
  const images = await service(root);
  await assert.rejects(images.pull(`${fake.address}/bad/image:1`), /sent wrong data/u);
  const blobs = await readdir(join(root, "content", "blobs", "sha256"));
  assert.ok(!blobs.includes(sha(layer).slice(7)), "the bad layer was not committed");
  assert.deepEqual(await readdir(join(root, "content", "ingest")), [], "no temp file is left");
  assert.throws(() => images.inspect(`${fake.address}/bad/image:1`), NotFoundError);
});

test("bearer-token and basic auth challenges are answered with the given credentials", { skip }, async (t) => {
  const root = await tempRoot(t);
  await mkdir(join(root, "registry"));
  const registry = await startRegistry(join(root, "registry"));
  t.after(() => registry.stop());
  const good = `Basic ${Buffer.from("alice:secret").toString("base64")}`;
  const scopes: string[] = [];
  const tokens = await startServer((incoming, response) => {
    const url = new URL(incoming.url ?? "/", "http://token");
    scopes.push(url.searchParams.get("scope") ?? "");
    if (incoming.headers.authorization !== good || url.searchParams.get("service") !== "shoal-test") {
      response.writeHead(401);
      response.end();
      return;
    }
    response.writeHead(200, { "content-type": "application/json" });
    response.end(JSON.stringify({ token: "granted-token", expires_in: 300 }));
  });
  t.after(() => tokens.stop());
  let mode: "bearer" | "basic" = "bearer";
  const gate = await startProxy(registry.address, (incoming, response) => {
    const expected = mode === "bearer" ? "Bearer granted-token" : good;
    if (incoming.headers.authorization === expected) return false;
    const challenge =
      mode === "bearer" ? `Bearer realm="http://${tokens.address}/token",service="shoal-test",scope="repository:demo/busybox:pull"` : 'Basic realm="shoal-test"';
    response.writeHead(401, { "www-authenticate": challenge, "content-type": "application/json" });
    response.end(JSON.stringify({ errors: [{ code: "UNAUTHORIZED" }] }));
    return true;
  });
  t.after(() => gate.stop());

  const images = await service(join(root, "engine"), { username: "alice", password: "secret" });
  await buildDemoImages(images);
  const ref = `${gate.address}/demo/busybox:auth`;
  await images.tag(demoBusyboxName, ref);
  await images.push(ref);
  assert.ok(scopes.includes("repository:demo/busybox:pull,push"), "push asks for a push scope");
  assert.ok(gate.requests.some((entry) => entry.authorization === "Bearer granted-token"));

  const anonymous = await service(join(root, "anonymous"));
  await assert.rejects(anonymous.pull(ref), UnauthenticatedError, "the token server refuses anonymous access");
  const wrong = await service(join(root, "wrong"), { username: "alice", password: "nope" });
  await assert.rejects(wrong.pull(ref), UnauthenticatedError);

  const fresh = await service(join(root, "fresh"), { username: "alice", password: "secret" });
  assert.equal((await fresh.pull(ref)).names[0], `${gate.address}/demo/busybox:auth`);

  mode = "basic";
  const basic = await service(join(root, "basic"), { username: "alice", password: "secret" });
  assert.equal((await basic.pull(ref)).id, fresh.inspect(ref).id);
  await assert.rejects((await service(join(root, "basic-anonymous"))).pull(ref), /requires a username and password/u);
});

test("removing an image while a pull runs defers garbage collection until the pull is done", { skip }, async (t) => {
  const root = await tempRoot(t);
  await mkdir(join(root, "registry"));
  const registry = await startRegistry(join(root, "registry"));
  t.after(() => registry.stop());
  const source = await service(join(root, "source"));
  const { busybox, layered } = await buildDemoImages(source);
  const topLayer = layered.layers.at(-1)?.digest ?? "";
  let release = (): void => undefined;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let arrived = (): void => undefined;
  const arrival = new Promise<void>((resolve) => (arrived = resolve));
  const proxy = await startProxy(registry.address, undefined, (incoming) => {
    if (incoming.method !== "GET" || !(incoming.url ?? "").endsWith(topLayer)) return undefined;
    arrived();
    return gate;
  });
  t.after(() => proxy.stop());
  t.after(() => release());
  const busyboxRef = `${proxy.address}/demo/app:busybox`;
  const layeredRef = `${proxy.address}/demo/app:layered`;
  await source.tag(demoBusyboxName, busyboxRef);
  await source.tag(demoLayeredName, layeredRef);
  await source.push(busyboxRef);
  await source.push(layeredRef);

  const puller = await service(join(root, "puller"));
  await puller.pull(busyboxRef);
  const pulling = puller.pull(layeredRef);
  await arrival;
  const removed = await puller.remove(busyboxRef);
  assert.deepEqual(removed.deleted, [busybox.id]);
  const blobs = join(root, "puller", "content", "blobs", "sha256");
  assert.ok((await readdir(blobs)).includes(busybox.id.slice(7)), "collection waits for the running pull");
  release();
  const pulled = await pulling;
  assert.equal(pulled.digest, layered.digest, "the pull completed with the shared base layer intact");
  const after = await readdir(blobs);
  assert.ok(!after.includes(busybox.id.slice(7)) && !after.includes(busybox.digest.slice(7)), "the deferred collection ran");
  assert.ok(after.includes(busybox.layers[0]?.digest.slice(7) ?? ""), "the shared layer is kept");
});
