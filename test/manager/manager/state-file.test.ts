import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

import { FailedPreconditionError, InvalidArgumentError } from "../../../src/common/errors.js";
import { hasManagerState, hostOfAddress, initManager, restartManager, swarmPaths, type ManagerState } from "../../../src/manager/manager/index.js";
import { loadManagerState, saveManagerState } from "../../../src/manager/manager/state-file.js";
import { logger } from "./cluster.js";

const state: ManagerState = {
  clusterId: "c1",
  nodeId: "n1",
  role: "manager",
  raftId: 2 ** 52 + 7,
  advertiseAddress: "10.0.0.1:4242",
  managers: [
    { raftId: 2 ** 52 + 7, nodeId: "n1", address: "10.0.0.1:4242", suffrage: "voter" },
    { raftId: 9, nodeId: "n0", address: "10.0.0.2:4242", suffrage: "removed" },
  ],
};

test("state.json round-trips, and a damaged one is refused with what to do", async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), "shoal-manager-state-"));
  t.after(() => rm(dataDir, { recursive: true, force: true }));
  const paths = swarmPaths(dataDir);
  assert.equal(await loadManagerState(paths), undefined);
  assert.equal(await hasManagerState(dataDir), false);
  await saveManagerState(paths, state);
  assert.deepEqual(await loadManagerState(paths), state);
  assert.equal(await hasManagerState(dataDir), true);
  await writeFile(paths.stateFile, JSON.stringify({ ...state, raftId: -1 }));
  await assert.rejects(loadManagerState(paths), (error: unknown) => error instanceof FailedPreconditionError && /join the swarm again/.test(error.message));
});

test("init refuses a node that is already in a swarm; restart refuses one that is not", async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), "shoal-manager-state-"));
  t.after(() => rm(dataDir, { recursive: true, force: true }));
  await assert.rejects(restartManager({ dataDir, logger }), FailedPreconditionError);
  await mkdir(swarmPaths(dataDir).root, { recursive: true });
  await saveManagerState(swarmPaths(dataDir), state);
  await assert.rejects(initManager({ dataDir, logger, advertiseAddress: "127.0.0.1:1" }), FailedPreconditionError);
  // A refused init leaves the existing state alone.
  assert.deepEqual(await loadManagerState(swarmPaths(dataDir)), state);
});

test("advertise addresses must be host:port", () => {
  assert.equal(hostOfAddress("10.0.0.1:4242"), "10.0.0.1");
  assert.equal(hostOfAddress("[::1]:4242"), "::1");
  assert.equal(hostOfAddress("manager-1.example:4242"), "manager-1.example");
  assert.throws(() => hostOfAddress("10.0.0.1"), InvalidArgumentError);
  assert.throws(() => hostOfAddress("::1:4242"), InvalidArgumentError);
});
