import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { pino } from "pino";

import { createApiServer } from "../../src/api/server.js";
import { systemRoutes } from "../../src/api/routes/system.js";
import type { SystemInfo } from "../../src/api/system-info.js";
import { ConflictError, NotFoundError } from "../../src/common/errors.js";

const info: SystemInfo = {
  nodeId: "abc",
  hostname: "host1",
  serverVersion: "9.9.9",
  operatingSystem: "Debian",
  osVersion: "12",
  kernelVersion: "6.1",
  arch: "x64",
  ncpu: 2,
  memTotalBytes: 1024,
  dataDir: "/var/lib/shoal",
  containers: { running: 2, paused: 0, stopped: 1 },
  images: 4,
  storageDriver: "overlay",
  runtime: { name: "runc", path: "/usr/sbin/runc", version: "1.1.5" },
  cgroupDriver: "cgroupfs",
  cgroupVersion: "1",
  swarm: { state: "inactive", nodeAddr: "", controlAvailable: false, clusterId: "", error: "" },
  warnings: [],
  labels: [],
};

async function server() {
  return createApiServer({
    logger: pino({ level: "silent" }),
    registrars: [
      systemRoutes({ info: () => Promise.resolve(info) }),
      (app) => {
        app.get("/boom/missing", () => {
          throw new NotFoundError("no such container: x");
        });
        app.get("/boom/conflict", () => {
          throw new ConflictError("update out of sequence");
        });
        app.get("/boom/bug", () => {
          throw new TypeError("undefined is not a function");
        });
        app.post("/echo", (request) => ({ body: request.body ?? null }));
      },
    ],
  });
}

describe("REST API server", () => {
  test("every route answers with and without a /vX.Y prefix", async () => {
    const api = await server();
    for (const url of ["/info", "/v1.47/info", "/v1.24/info"]) {
      const response = await api.app.inject({ method: "GET", url });
      assert.equal(response.statusCode, 200, url);
      assert.equal(response.json<{ ID: string }>().ID, "abc");
    }
    await api.close();
  });

  test("JSON answers carry Content-Type application/json exactly", async () => {
    const api = await server();
    const ok = await api.app.inject({ method: "GET", url: "/version" });
    assert.equal(ok.headers["content-type"], "application/json");
    const missing = await api.app.inject({ method: "GET", url: "/v1.47/nothing/here" });
    assert.equal(missing.statusCode, 404);
    assert.equal(missing.headers["content-type"], "application/json");
    assert.deepEqual(missing.json(), { message: "page not found: GET /nothing/here" });
    await api.close();
  });

  test("typed errors map to their status with a {message} body; bugs are 500", async () => {
    const api = await server();
    const missing = await api.app.inject({ method: "GET", url: "/boom/missing" });
    assert.equal(missing.statusCode, 404);
    assert.deepEqual(missing.json(), { message: "no such container: x" });
    const conflict = await api.app.inject({ method: "GET", url: "/boom/conflict" });
    assert.equal(conflict.statusCode, 409);
    const bug = await api.app.inject({ method: "GET", url: "/boom/bug" });
    assert.equal(bug.statusCode, 500);
    assert.match(bug.json<{ message: string }>().message, /undefined is not a function/);
    await api.close();
  });

  test("a client version newer than the server's is refused with 400", async () => {
    const api = await server();
    const response = await api.app.inject({ method: "GET", url: "/v1.99/info" });
    assert.equal(response.statusCode, 400);
    assert.match(response.json<{ message: string }>().message, /client version 1\.99 is too new\. Maximum supported API version is 1\.47/);
    const old = await api.app.inject({ method: "GET", url: "/v1.12/info" });
    assert.equal(old.statusCode, 400);
    await api.close();
  });

  test("_ping answers GET and HEAD with docker's negotiation headers", async () => {
    const api = await server();
    const get = await api.app.inject({ method: "GET", url: "/_ping" });
    assert.equal(get.body, "OK");
    assert.equal(get.headers["api-version"], "1.47");
    assert.equal(get.headers.ostype, "linux");
    assert.equal(get.headers.swarm, "inactive");
    const head = await api.app.inject({ method: "HEAD", url: "/_ping" });
    assert.equal(head.statusCode, 200);
    assert.equal(head.headers["api-version"], "1.47");
    await api.close();
  });

  test("an empty JSON body is accepted and a malformed one is a 400", async () => {
    const api = await server();
    const empty = await api.app.inject({ method: "POST", url: "/echo", headers: { "content-type": "application/json" }, payload: "" });
    assert.equal(empty.statusCode, 200);
    assert.deepEqual(empty.json(), { body: null });
    const bad = await api.app.inject({ method: "POST", url: "/echo", headers: { "content-type": "application/json" }, payload: "{nope" });
    assert.equal(bad.statusCode, 400);
    assert.match(bad.json<{ message: string }>().message, /invalid JSON body/);
    await api.close();
  });

  test("/info maps the node's facts to Docker's fields", async () => {
    const api = await server();
    const body = (await api.app.inject({ method: "GET", url: "/info" })).json<Record<string, unknown>>();
    assert.equal(body.Containers, 3);
    assert.equal(body.ContainersRunning, 2);
    assert.equal(body.Images, 4);
    assert.equal(body.Architecture, "x86_64");
    assert.equal(body.DefaultRuntime, "runc");
    assert.deepEqual(body.Runtimes, { runc: { path: "/usr/sbin/runc" } });
    await api.close();
  });
});
