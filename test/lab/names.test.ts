import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { InvalidArgumentError } from "../../src/common/errors.js";
import {
  labBridgeName,
  labHostAddress,
  labHostNames,
  labManagersMax,
  labNetnsName,
  labVethName,
  labWorkersMax,
  parseLabState,
  parsePartitionGroups,
  partitionRules,
  validateLabName,
  validateLabShape,
} from "../../src/lab/index.js";

/** Linux interface names hold at most 15 bytes (IFNAMSIZ 16 with the NUL). */
const interfaceNameBytesMax = 15;

describe("lab names and addresses", () => {
  test("every interface name fits IFNAMSIZ, for the longest lab name and the largest shape", () => {
    const name = "a".repeat(24);
    validateLabName(name);
    assert.ok(Buffer.byteLength(labBridgeName(name)) <= interfaceNameBytesMax);
    for (const host of labHostNames(labManagersMax, labWorkersMax)) {
      assert.ok(Buffer.byteLength(labVethName(name, host.name)) <= interfaceNameBytesMax, labVethName(name, host.name));
    }
    assert.equal(labNetnsName("t1", "m2"), "lab-t1-m2");
  });

  test("two labs get different links; the same lab always the same", () => {
    assert.notEqual(labBridgeName("t1"), labBridgeName("t2"));
    assert.equal(labVethName("t1", "w3"), labVethName("t1", "w3"));
  });

  test("hosts are m1..mN then w1..wN with role-ranged addresses", () => {
    assert.deepEqual(labHostNames(2, 1), [{ name: "m1", role: "manager" }, { name: "m2", role: "manager" }, { name: "w1", role: "worker" }]);
    assert.equal(labHostAddress(7, "m3"), "10.199.7.13");
    assert.equal(labHostAddress(7, "w12"), "10.199.7.112");
  });

  test("names and shapes outside the limits are refused", () => {
    assert.throws(() => validateLabName("Bad_Name"), InvalidArgumentError);
    assert.throws(() => validateLabName("x".repeat(25)), InvalidArgumentError);
    assert.throws(() => validateLabShape(0, 1), InvalidArgumentError);
    assert.throws(() => validateLabShape(labManagersMax + 1, 0), InvalidArgumentError);
    assert.throws(() => validateLabShape(1, labWorkersMax + 1), InvalidArgumentError);
  });
});

describe("partition groups and rules", () => {
  test("groups split on / and hosts on commas or spaces", () => {
    assert.deepEqual(parsePartitionGroups(["m1,w1", "/", "m2,m3,w2"]), [["m1", "w1"], ["m2", "m3", "w2"]]);
    assert.deepEqual(parsePartitionGroups(["m1/m2", "m3"]), [["m1"], ["m2", "m3"]]);
    assert.throws(() => parsePartitionGroups(["m1,w1"]), InvalidArgumentError);
    assert.throws(() => parsePartitionGroups(["m1", "/"]), InvalidArgumentError);
  });

  test("a symmetric cut drops both directions; a one-way cut only connections the first group opens", () => {
    const both = partitionRules({ side: "first", peers: ["10.0.0.2"], oneWay: false });
    assert.match(both, /hook input.*ip saddr \{ 10\.0\.0\.2 \} drop/);
    assert.match(both, /hook output.*ip daddr \{ 10\.0\.0\.2 \} drop/);
    const first = partitionRules({ side: "first", peers: ["10.0.0.2"], oneWay: true });
    assert.match(first, /hook output.*ip daddr \{ 10\.0\.0\.2 \} ct direction original drop/);
    assert.doesNotMatch(first, /hook input/);
    const other = partitionRules({ side: "other", peers: ["10.0.0.1"], oneWay: true });
    assert.match(other, /hook input.*ip saddr \{ 10\.0\.0\.1 \} ct direction original drop/);
    assert.doesNotMatch(other, /hook output/);
  });
});

describe("lab state file", () => {
  const host = { name: "m1", role: "manager", address: "10.199.1.11", netns: "lab-t-m1", veth: "labc-m1", utsFile: "/run/x/m1.uts", dir: "/d/m1", dataDir: "/d/m1/data", runDir: "/d/m1/run", socket: "/d/m1/s.sock", logFile: "/d/m1/log", pid: 42 };
  const state = { version: 1, name: "t", bridge: "lab-abc", subnet: "10.199.1.0/24", gateway: "10.199.1.1", hostsRoot: "/d", managers: 1, workers: 0, hosts: [host] };

  test("a valid state parses to the same values", () => {
    assert.deepEqual(parseLabState(JSON.stringify(state), "state.json"), state);
  });

  test("a malformed state is refused with what is wrong, never guessed at", () => {
    assert.throws(() => parseLabState("{", "state.json"), /not JSON/);
    assert.throws(() => parseLabState(JSON.stringify({ ...state, version: 2 }), "state.json"), /unknown version/);
    assert.throws(() => parseLabState(JSON.stringify({ ...state, hosts: [{ ...host, role: "boss" }] }), "state.json"), /role/);
    assert.throws(() => parseLabState(JSON.stringify({ ...state, hosts: [{ ...host, pid: -1 }] }), "state.json"), /pid/);
  });
});
