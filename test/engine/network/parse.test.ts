import assert from "node:assert/strict";
import { test } from "node:test";

import { parseCniError, parseCniResult } from "../../../src/engine/network/cni.js";
import { containerHosts, containerResolvConf } from "../../../src/engine/network/etc-files.js";
import { parseNetworkMode, validateNetworkConfig } from "../../../src/engine/network/network.js";
import { parsePortBinding } from "../../../src/engine/network/ports.js";

test("-p values parse like Docker's, and bad ones say what to fix", () => {
  assert.deepEqual(parsePortBinding("8080:80"), { hostIp: "0.0.0.0", hostPort: 8080, containerPort: 80, protocol: "tcp" });
  assert.deepEqual(parsePortBinding("127.0.0.1:53:5353/udp"), { hostIp: "127.0.0.1", hostPort: 53, containerPort: 5353, protocol: "udp" });
  assert.throws(() => parsePortBinding("80"), { name: "InvalidArgumentError", message: /hostPort:containerPort/ });
  assert.throws(() => parsePortBinding("0:80"), { name: "InvalidArgumentError", message: /host port/ });
  assert.throws(() => parsePortBinding("8080:70000"), { name: "InvalidArgumentError", message: /container port/ });
  assert.throws(() => parsePortBinding("8080:80/sctp"), { name: "InvalidArgumentError", message: /tcp or udp/ });
});

test("CNI results are parsed from unknown JSON", () => {
  const result = parseCniResult(
    JSON.stringify({
      cniVersion: "1.0.0",
      interfaces: [{ name: "shoal0", mac: "aa" }, { name: "eth0", mac: "bb", sandbox: "/run/netns/x" }],
      ips: [{ address: "10.1.0.5/24", gateway: "10.1.0.1", interface: 1 }],
    }),
  );
  assert.deepEqual(result.ips, [{ address: "10.1.0.5/24", gateway: "10.1.0.1" }]);
  assert.equal(result.macAddress, "bb");
  assert.throws(() => parseCniResult("[]"), { name: "UnavailableError" });
  assert.throws(() => parseCniResult('{"ips":[{"gateway":"x"}]}'), { name: "UnavailableError" });
  assert.equal(parseCniError('{"code":7,"msg":"failed to allocate","details":"range full"}'), "failed to allocate: range full");
  assert.equal(parseCniError("not json"), null);
});

test("network modes and per-daemon bridge settings are validated", () => {
  assert.equal(parseNetworkMode("none"), "none");
  assert.throws(() => parseNetworkMode("overlay"), { name: "InvalidArgumentError", message: /bridge, host or none/ });
  validateNetworkConfig({ bridgeName: "shoal-1234abcd", subnet: "10.200.3.0/24" });
  assert.throws(() => validateNetworkConfig({ bridgeName: "a-very-long-bridge-name", subnet: "10.0.0.0/24" }));
  assert.throws(() => validateNetworkConfig({ bridgeName: "b", subnet: "10.0.0.0/31" }));
  assert.throws(() => validateNetworkConfig({ bridgeName: "b", subnet: "300.0.0.0/24" }));
});

test("generated /etc files: loopback resolvers dropped in a private netns, own name in hosts", () => {
  const resolv = containerResolvConf("search lan\nnameserver 127.0.0.53\n", true);
  assert.equal(resolv, "search lan\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n");
  assert.equal(containerResolvConf("nameserver 10.0.0.2\n", true), "nameserver 10.0.0.2\n");
  assert.equal(containerResolvConf("nameserver 127.0.0.53\n", false), "nameserver 127.0.0.53\n");
  assert.match(containerHosts("web", "10.1.0.5"), /^10\.1\.0\.5\tweb$/m);
  assert.doesNotMatch(containerHosts("web", null), /web/);
});
