import assert from "node:assert/strict";
import { test } from "node:test";

import { needsLeader } from "../../src/daemon/forward.js";

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
