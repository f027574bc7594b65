import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { randomBytes, randomInt } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test, type TestContext } from "node:test";

import { bridgeMasqueradeRuleset, bridgeMasqueradeTable } from "../../../src/engine/network/masquerade.js";
import { containerSkipReason, createEngineFixture, readLogs, waitFor } from "../runtime/helpers.js";

const options = { skip: containerSkipReason() ?? false, timeout: 40_000 };

/**
 * A network outside the bridge's subnet: a namespace behind a veth on a /30 of its own,
 * serving HTTP with busybox httpd, whose log names each client's address.
 */
async function startOutsideServer(t: TestContext): Promise<{ serverAddress: string; hostAddress: string; log: () => string }> {
  const suffix = randomBytes(3).toString("hex");
  const netns = `shoal-test-out-${suffix}`;
  const third = randomInt(0, 256);
  const hostAddress = `10.250.${third}.1`;
  const serverAddress = `10.250.${third}.2`;
  const site = await mkdtemp(join(tmpdir(), "shoal-masq-"));
  await writeFile(join(site, "index.html"), "outside\n");
  execFileSync("ip", ["netns", "add", netns]);
  let log = "";
  const server = (() => {
    execFileSync("ip", ["link", "add", `smo${suffix}`, "type", "veth", "peer", "name", "eth0", "netns", netns]);
    execFileSync("ip", ["addr", "add", `${hostAddress}/30`, "dev", `smo${suffix}`]);
    execFileSync("ip", ["link", "set", `smo${suffix}`, "up"]);
    execFileSync("ip", ["-n", netns, "addr", "add", `${serverAddress}/30`, "dev", "eth0"]);
    execFileSync("ip", ["-n", netns, "link", "set", "eth0", "up"]);
    const child = spawn("ip", ["netns", "exec", netns, "busybox", "httpd", "-f", "-vv", "-p", `${serverAddress}:8080`, "-h", site], { stdio: ["ignore", "ignore", "pipe"] });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (log += chunk));
    return child;
  })();
  t.after(async () => {
    server.kill("SIGKILL");
    // Deleting the namespace deletes the veth pair with it.
    execFileSync("ip", ["netns", "delete", netns]);
    await rm(site, { recursive: true, force: true });
  });
  return { serverAddress, hostAddress, log: () => log };
}

test("the masquerade ruleset replaces one table holding one rule for the subnet", () => {
  const ruleset = bridgeMasqueradeRuleset("shoal-abc", "10.199.5.0/24");
  assert.equal(bridgeMasqueradeTable("shoal-abc"), "shoal-masq-shoal-abc");
  assert.match(ruleset, /^table ip shoal-masq-shoal-abc\ndelete table ip shoal-masq-shoal-abc\n/);
  assert.match(ruleset, /type nat hook postrouting priority srcnat;/);
  assert.match(ruleset, /ip saddr 10\.199\.5\.0\/24 ip daddr != \{ 10\.199\.5\.0\/24, 224\.0\.0\.0\/4 \} masquerade/);
});

test("bridge: traffic leaving the subnet goes out with the host's address, through one nftables rule", options, async (t) => {
  const fixture = await createEngineFixture(t);
  const engine = await fixture.open();
  const outside = await startOutsideServer(t);
  const { id } = await engine.containers.create({
    image: "busybox",
    // nc, not wget: static busybox's wget resolves through NSS, which the bare rootfs lacks.
    cmd: ["sh", "-c", `for i in 1 2 3 4 5 6 7 8 9 10; do printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 2 ${outside.serverAddress} 8080 | grep -q '^outside' && echo reached && exit 0; sleep 0.2; done; exit 1`],
  });
  await engine.containers.start(id);
  const containerAddress = engine.containers.inspect(id).state.network?.ipAddress ?? null;
  assert.ok(containerAddress !== null, "the container has a bridge address");
  const status = await engine.containers.wait(id);
  const logs = await readLogs(engine, id);
  assert.equal(status.exitCode, 0, `the container could not reach the outside server: ${logs.stderr}`);
  assert.equal(logs.stdout, "reached\n");
  await waitFor("the server to log the request", () => outside.log().includes("url:/index.html"));
  assert.match(outside.log(), new RegExp(`^${outside.hostAddress.replace(/\./g, "\\.")}:\\d+: url:/index.html`, "m"));
  assert.ok(!outside.log().includes(`${containerAddress}:`), "the container's own address left the host");
  const table = execFileSync("nft", ["list", "table", "ip", bridgeMasqueradeTable(fixture.bridgeName)], { encoding: "utf8" });
  assert.match(table, new RegExp(`ip saddr ${fixture.subnet.replace(/\./g, "\\.")} .* masquerade`));
  await engine.containers.remove(id);
});
