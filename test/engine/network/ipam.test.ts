import assert from "node:assert/strict";
import { test } from "node:test";

import { BridgeAddressPool, formatIpv4, parseIpv4, parseIpv4Subnet } from "../../../src/engine/network/ipam.js";
import { macAddressOf } from "../../../src/engine/network/network.js";

test("IPv4 addresses and subnets parse, and bad ones say what to fix", () => {
  assert.equal(parseIpv4("10.200.3.7"), 0x0ac80307);
  assert.equal(formatIpv4(0x0ac80307), "10.200.3.7");
  assert.equal(formatIpv4(parseIpv4("255.255.255.255") ?? 0), "255.255.255.255");
  assert.equal(parseIpv4("10.0.0.256"), null);
  assert.equal(parseIpv4("10.0.0"), null);
  assert.deepEqual(parseIpv4Subnet("10.200.3.0/24"), { network: 0x0ac80300, prefixLength: 24 });
  assert.throws(() => parseIpv4Subnet("10.200.3.1/24"), { name: "InvalidArgumentError", message: /host bits/ });
  assert.throws(() => parseIpv4Subnet("10.0.0.0/31"), { name: "InvalidArgumentError", message: /\/8 to \/30/ });
  assert.throws(() => parseIpv4Subnet("10.0.0.0"), { name: "InvalidArgumentError" });
});

test("the pool keeps the network, gateway and broadcast addresses out and goes round-robin", () => {
  const pool = new BridgeAddressPool("10.9.0.0/29");
  assert.equal(pool.gateway, "10.9.0.1");
  const handed = ["a", "b", "c", "d", "e"].map((owner) => pool.allocate(owner));
  assert.deepEqual(handed, ["10.9.0.2", "10.9.0.3", "10.9.0.4", "10.9.0.5", "10.9.0.6"]);
  assert.throws(() => pool.allocate("f"), { name: "ConflictError", message: /no free address/ });
  pool.release("10.9.0.3", "b");
  pool.release("10.9.0.4", "somebody else");
  // A release by another owner frees nothing; the freed address comes back only when its turn comes.
  assert.equal(pool.allocate("f"), "10.9.0.3");
  assert.throws(() => pool.allocate("g"), { name: "ConflictError" });
  pool.release("10.9.0.5", "d");
  pool.release("10.9.0.2", "a");
  assert.equal(pool.allocate("h"), "10.9.0.5", "round-robin continues after the last address handed out");
  assert.equal(pool.allocate("i"), "10.9.0.2");
});

test("addresses of containers found running are reserved before any new one is handed out", () => {
  const pool = new BridgeAddressPool("10.9.0.0/24");
  pool.reserve("10.9.0.2", "running");
  pool.reserve("10.9.1.2", "elsewhere");
  assert.equal(pool.allocate("new"), "10.9.0.3");
});

test("a container's MAC address follows Docker's 02:42 scheme from its address", () => {
  assert.equal(macAddressOf("172.17.0.2"), "02:42:ac:11:00:02");
  assert.equal(macAddressOf("10.250.255.254"), "02:42:0a:fa:ff:fe");
  assert.throws(() => macAddressOf("nope"), { name: "InvalidArgumentError" });
});
