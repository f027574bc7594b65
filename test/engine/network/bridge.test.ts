import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";

import { macAddressOf } from "../../../src/engine/network/network.js";
import { collectExecOutput } from "../../../src/engine/runtime/exec.js";
import { containerSkipReason, createEngineFixture, freePort, waitFor, waitForLog } from "../runtime/helpers.js";

const options = { skip: containerSkipReason() ?? false, timeout: 40_000 };

function netnsList(): string {
  return execFileSync("ip", ["netns", "list"], { encoding: "utf8" });
}

test("bridge: a container gets an IP, reaches the bridge, and a published port answers on the host", options, async (t) => {
  const fixture = await createEngineFixture(t);
  const engine = await fixture.open();
  await writeFile(join(fixture.rootfsDirectory, "srv", "index.html"), "hello from shoal\n");
  const hostPort = await freePort();
  const { id } = await engine.containers.create({
    image: "busybox",
    cmd: ["sh", "-c", "httpd -f -p 80 -h /srv & echo serving; wait"],
    portBindings: [{ hostIp: "0.0.0.0", hostPort, containerPort: 80, protocol: "tcp" }],
  });
  await engine.containers.start(id);
  await waitForLog(engine, id, "serving");
  const network = engine.containers.inspect(id).state.network;
  assert.ok(network?.ipAddress !== null && network?.ipAddress !== undefined, "the container has an address");
  const subnetPrefix = fixture.subnet.split(".").slice(0, 3).join(".");
  assert.ok(network.ipAddress.startsWith(`${subnetPrefix}.`), `${network.ipAddress} is in ${fixture.subnet}`);
  assert.ok(netnsList().includes(`-${id.slice(0, 12)}`), "the container has a named netns");
  const link = await collectExecOutput(await engine.containers.exec(id, { cmd: ["ip", "-o", "link", "show", "eth0"] }));
  assert.match(link.stdout.toString(), new RegExp(`link/ether ${macAddressOf(network.ipAddress)}`), "eth0 carries the MAC derived from its address");

  const ping = await collectExecOutput(await engine.containers.exec(id, { cmd: ["ping", "-c", "1", "-W", "2", network.gateway ?? ""] }));
  assert.equal(ping.exitCode, 0, `ping of the bridge failed: ${ping.stdout.toString()}${ping.stderr.toString()}`);
  const hosts = await collectExecOutput(await engine.containers.exec(id, { cmd: ["cat", "/etc/hosts", "/etc/hostname"] }));
  assert.match(hosts.stdout.toString(), new RegExp(`${network.ipAddress.replace(/\./g, "\\.")}\\s+${id.slice(0, 12)}`));

  const hostAddress = execFileSync("ip", ["-4", "-o", "route", "get", "1.1.1.1"], { encoding: "utf8" }).match(/src (\S+)/)?.[1];
  assert.ok(hostAddress !== undefined, "the host has a routable address");
  let body = "";
  await waitFor("the published port to answer", async () => {
    try {
      const response = await fetch(`http://${hostAddress}:${hostPort}/index.html`, { signal: AbortSignal.timeout(2000) });
      body = await response.text();
      return response.ok;
    } catch {
      return false;
    }
  });
  assert.equal(body, "hello from shoal\n");

  const second = await engine.containers.create({
    image: "busybox",
    cmd: ["sleep", "30"],
    portBindings: [{ hostIp: "0.0.0.0", hostPort, containerPort: 80, protocol: "tcp" }],
  });
  await assert.rejects(engine.containers.start(second.id), (error: Error) => {
    assert.equal(error.name, "ConflictError");
    assert.match(error.message, new RegExp(`port ${hostPort}/tcp is already published`));
    return true;
  });
  assert.equal(engine.containers.inspect(second.id).state.status, "created");
  assert.equal(netnsList().includes(`-${second.id.slice(0, 12)}`), false, "no netns left by the refused start");

  const bridgePorts = (): string => execFileSync("ip", ["-o", "link", "show", "master", fixture.bridgeName], { encoding: "utf8" });
  assert.equal(bridgePorts().trim().split("\n").length, 1, "one container, one port on the bridge");
  await engine.containers.remove(id, { force: true });
  assert.equal(netnsList().includes(`-${id.slice(0, 12)}`), false, "rm deletes the netns");
  await waitFor("the container's veth to leave the bridge", () => bridgePorts().trim() === "");
  // The port is free again once its owner is gone.
  await engine.containers.start(second.id);
  await engine.containers.remove(second.id, { force: true });
});

test("none gives a private namespace with loopback up; host shares the host's interfaces", options, async (t) => {
  const engine = await (await createEngineFixture(t)).open();
  const interfacesOf = async (networkMode: "none" | "host"): Promise<string> => {
    const { id } = await engine.containers.create({ image: "busybox", cmd: ["sleep", "30"], networkMode });
    await engine.containers.start(id);
    const result = await collectExecOutput(await engine.containers.exec(id, { cmd: ["ip", "-o", "link"] }));
    await engine.containers.remove(id, { force: true });
    return result.stdout.toString();
  };
  const none = await interfacesOf("none");
  assert.deepEqual(
    none.trim().split("\n").map((line) => line.split(":")[1]?.trim()),
    ["lo"],
  );
  assert.match(none, /LOOPBACK,UP/);
  // Other tests add and remove veths meanwhile: compare with the host's default-route device.
  const device = /dev (\S+)/.exec(execFileSync("ip", ["-o", "route", "get", "1.1.1.1"], { encoding: "utf8" }))?.[1];
  assert.ok(device !== undefined, "the host has a default route");
  assert.match(await interfacesOf("host"), new RegExp(`: ${device}[:@]`));
});
