import assert from "node:assert/strict";
import { test, type TestContext } from "node:test";

import type { FastifyInstance } from "fastify";
import { pino } from "pino";

import { createApiServer } from "../../src/api/server.js";
import { UnavailableError } from "../../src/common/errors.js";
import { leaderForwarding, needsLeader, type LeaderRouting } from "../../src/daemon/forward.js";
import type { ForwardedRequest, ForwardedResponse } from "../../src/manager/manager/index.js";
import { waitFor } from "../helpers/wait.js";

test("cluster writes need the leader; reads and this node's own init/join/leave do not", () => {
  assert.equal(needsLeader("POST", "/v1.47/services/create"), true);
  assert.equal(needsLeader("POST", "/services/abc/update?version=3"), true);
  assert.equal(needsLeader("DELETE", "/nodes/abc"), true);
  assert.equal(needsLeader("POST", "/swarm/update?version=1"), true);
  assert.equal(needsLeader("GET", "/v1.47/services"), false);
  assert.equal(needsLeader("POST", "/v1.47/swarm/init"), false);
  assert.equal(needsLeader("POST", "/swarm/join"), false);
  assert.equal(needsLeader("POST", "/swarm/leave?force=1"), false);
  assert.equal(needsLeader("POST", "/containers/create"), false);
  assert.equal(needsLeader("POST", "/servicesx/create"), false);
});

/** A fake place in the swarm that records what the hook asked of it. */
class RecordingRouting implements LeaderRouting {
  readonly calls: string[] = [];
  constructor(readonly follower: boolean, readonly barrier: () => Promise<void> = () => Promise.resolve()) {}

  forwardsWrites(): boolean {
    return this.follower;
  }

  forwardToLeader(request: ForwardedRequest): Promise<ForwardedResponse> {
    this.calls.push(`forward ${request.method} ${request.path}`);
    return Promise.resolve({ status: 201, contentType: "application/json", body: Buffer.from('{"from":"leader"}') });
  }

  async readBarrier(): Promise<void> {
    this.calls.push("barrier");
    await this.barrier();
  }
}

async function appWith(routing: LeaderRouting, t: TestContext): Promise<FastifyInstance> {
  const routes = (app: FastifyInstance): void => {
    app.get("/services", () => ({ from: "local" }));
    app.get("/containers/json", () => ({ from: "local" }));
    app.post("/services/create", () => ({ from: "local" }));
  };
  const api = await createApiServer({ logger: pino({ level: "silent" }), registrars: [leaderForwarding(routing), routes] });
  t.after(() => api.close());
  return api.app;
}

test("a follower's cluster read waits for the read barrier before the route runs", async (t) => {
  let release = (): void => undefined;
  const routing = new RecordingRouting(true, () => new Promise<void>((resolve) => (release = resolve)));
  const app = await appWith(routing, t);
  let answered = false;
  const response = app.inject({ method: "GET", url: "/v1.47/services" }).then((reply) => {
    answered = true;
    return reply;
  });
  await waitFor("the read to reach the barrier", () => (routing.calls.includes("barrier") ? true : undefined));
  assert.equal(answered, false, "the read was answered before the replica caught up");
  release();
  assert.deepEqual((await response).json(), { from: "local" });
});

test("a failed read barrier answers with its error; engine reads and writes skip it", async (t) => {
  const failing = new RecordingRouting(true, () => Promise.reject(new UnavailableError("the swarm has no leader")));
  const app = await appWith(failing, t);
  const refused = await app.inject({ method: "GET", url: "/services" });
  assert.equal(refused.statusCode, 503);
  assert.deepEqual(refused.json(), { message: "the swarm has no leader" });
  failing.calls.length = 0;
  assert.deepEqual((await app.inject({ method: "GET", url: "/v1.47/containers/json" })).json(), { from: "local" });
  assert.deepEqual((await app.inject({ method: "POST", url: "/services/create", payload: {} })).json(), { from: "leader" });
  assert.deepEqual(failing.calls, ["forward POST /services/create"]);
});
