import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, readdir, readlink, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";

import { asArray } from "../../src/cli/parse.js";
import { UnavailableError, errorMessage } from "../../src/common/errors.js";
import { createLogger } from "../../src/common/logger.js";
import { Lab, labBridgeName, labStateRoot, labVethName } from "../../src/lab/index.js";
import { processAlive } from "../helpers/process.js";
import { run } from "../helpers/run.js";
import { waitFor } from "../helpers/wait.js";

const logger = createLogger({ level: "warn", pretty: false });
const labMain = fileURLToPath(new URL("../../src/lab/main.js", import.meta.url));

async function hasCommand(name: string): Promise<boolean> {
  return (await run("sh", ["-c", `command -v ${name}`]).catch(() => ({ code: 1 }))).code === 0;
}

const skipReason =
  process.getuid?.() !== 0
    ? "needs root (network namespaces, nftables, mounts)"
    : !(await hasCommand("nsenter")) || !(await hasCommand("nft")) || !(await hasCommand("ip"))
      ? "needs nsenter, nft and ip (util-linux, nftables, iproute2)"
      : false;

/** A TCP connect from inside a host: 0 when it connects within a second, 1 otherwise. */
const connectScript = `const s=require("net").connect({host:process.argv[1],port:4242,timeout:1000});s.on("connect",()=>process.exit(0));s.on("timeout",()=>process.exit(1));s.on("error",()=>process.exit(1));`;

async function canConnect(lab: Lab, from: string, to: string): Promise<boolean> {
  const result = await lab.exec(from, [process.execPath, "-e", connectScript, lab.host(to).address], { timeoutMs: 10_000 });
  return result.code === 0;
}

interface Traces {
  readonly pids: number[];
  readonly engineIds: string[];
  readonly hostsRoot: string;
}

/** Every process in the lab's namespaces and every engine id, read before `down`. */
async function traces(lab: Lab): Promise<Traces> {
  const engineIds: string[] = [];
  for (const host of lab.hosts) {
    const id = await readFile(join(host.dataDir, "engine", "engine-id"), "utf8").catch(() => "");
    if (id !== "") engineIds.push(id.trim());
  }
  const inodes = new Set<string>();
  for (const entry of await readdir("/run/netns")) {
    if (entry.startsWith(`lab-${lab.name}-`) || engineIds.some((id) => entry.startsWith(`shoal-${id.slice(0, 8)}-`))) {
      inodes.add((await run("stat", ["-L", "-c", "net:[%i]", join("/run/netns", entry)])).stdout.trim());
    }
  }
  const pids: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const link = await readlink(`/proc/${entry}/ns/net`).catch(() => "");
    if (inodes.has(link)) pids.push(Number(entry));
  }
  return { pids, engineIds, hostsRoot: join(lab.host("m1").dataDir, "..", "..") };
}

/** What is left of a lab after down: empty when nothing is. */
async function leftovers(name: string, before: Traces): Promise<string[]> {
  const left: string[] = [];
  for (const entry of await readdir("/run/netns")) {
    if (entry.startsWith(`lab-${name}-`)) left.push(`netns ${entry}`);
    if (before.engineIds.some((id) => entry.startsWith(`shoal-${id.slice(0, 8)}-`))) left.push(`container netns ${entry}`);
  }
  const links = (await run("ip", ["-o", "link", "show"])).stdout;
  if (links.includes(`${labBridgeName(name)}:`)) left.push(`bridge ${labBridgeName(name)}`);
  if (links.includes(labVethName(name, ""))) left.push("a veth of the lab");
  const mounts = await readFile("/proc/self/mountinfo", "utf8");
  for (const line of mounts.split("\n")) {
    const point = line.split(" ")[4] ?? "";
    if (point.startsWith(before.hostsRoot) || point.startsWith(join(labStateRoot, name))) left.push(`mount ${point}`);
  }
  for (const pid of before.pids) if (await processAlive(pid)) left.push(`process ${pid}`);
  for (const hierarchy of await readdir("/sys/fs/cgroup")) {
    for (const id of before.engineIds) if (existsSync(join("/sys/fs/cgroup", hierarchy, `shoal-${id}`))) left.push(`cgroup ${hierarchy}/shoal-${id}`);
  }
  if (existsSync(join(labStateRoot, name))) left.push("state dir");
  if (existsSync(before.hostsRoot)) left.push("host dirs");
  return left;
}

describe("lab: hosts, exec, partitions", { skip: skipReason }, () => {
  let lab: Lab;
  let dir: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "shoal-lab-"));
    lab = await Lab.up({ name: "t-lab", managers: 1, workers: 2, dir, logger });
  });

  after(async () => {
    await lab?.down();
    await rm(dir, { recursive: true, force: true });
  });

  test("exec runs in the host's namespaces: its hostname, its address, its daemon", async () => {
    for (const host of ["m1", "w1", "w2"]) {
      const result = await lab.exec(host, ["hostname"]);
      assert.equal(result.stdout.trim(), host);
    }
    const addresses = await lab.exec("w2", ["ip", "-4", "-o", "addr", "show", "dev", "eth0"]);
    assert.match(addresses.stdout, new RegExp(`inet ${lab.host("w2").address.replaceAll(".", "\\.")}/24`));
    const nodes = await lab.exec("m1", ["shoal", "node", "ls"]);
    assert.equal(nodes.code, 0, nodes.stderr);
    for (const host of ["m1", "w1", "w2"]) assert.match(nodes.stdout, new RegExp(`\\b${host}\\b.*Ready`));
    const docker = await lab.exec("m1", ["docker", "service", "ls"]);
    assert.equal(docker.code, 0, docker.stderr);
    assert.match(docker.stdout, /^ID\s+NAME/);
  });

  test("the machine reaches every host on the lab bridge", async () => {
    const info = await lab.client("w1").json("GET", "/nodes").catch((error: unknown) => error);
    assert.ok(info instanceof Error, "a worker answered /nodes: it should refuse, not being a manager");
    assert.equal(asArray(await lab.client("m1").json("GET", "/nodes"), "nodes").length, 3);
    const result = await run(process.execPath, ["-e", connectScript, lab.host("w2").address]);
    assert.equal(result.code, 0, "no TCP connection from the root namespace to w2:4242");
  });

  test("up on a running lab of the same shape changes nothing", async () => {
    const logBefore = await readFile(lab.host("w1").logFile, "utf8");
    const again = await Lab.up({ name: "t-lab", managers: 1, workers: 2, dir, logger });
    assert.deepEqual(again.hosts, lab.hosts);
    assert.equal(await readFile(lab.host("w1").logFile, "utf8").then((text) => text.split("shoald started").length), logBefore.split("shoald started").length);
  });

  test("a symmetric partition blocks both ways and only between the groups; heal restores", async () => {
    try {
      await lab.partition([["w1"], ["w2"]]);
      assert.equal(await canConnect(lab, "w1", "w2"), false, "w1 reached w2 across the partition");
      assert.equal(await canConnect(lab, "w2", "w1"), false, "w2 reached w1 across the partition");
      assert.equal(await canConnect(lab, "w1", "m1"), true, "w1 lost m1, which is in no group");
      await lab.heal();
      assert.equal(await canConnect(lab, "w1", "w2"), true);
      assert.equal(await canConnect(lab, "w2", "w1"), true);
    } finally {
      await lab.heal();
    }
  });

  test("a one-way partition blocks only the first group's connections", async () => {
    try {
      await lab.partition([["w1"], ["w2"]], { oneWay: true });
      assert.equal(await canConnect(lab, "w1", "w2"), false, "w1 reached w2 through a one-way cut");
      assert.equal(await canConnect(lab, "w2", "w1"), true, "w2 could not reach w1: the cut is not one-way");
    } finally {
      await lab.heal();
    }
  });

  test("delay uses tc netem, or says clearly that the kernel lacks it", async () => {
    const outcome = await lab.delay("w1", 30).then(() => undefined, (error: unknown) => error);
    if (outcome === undefined) {
      const qdisc = await lab.exec("w1", ["tc", "qdisc", "show", "dev", "eth0"]);
      assert.match(qdisc.stdout, /netem.*delay 30/);
      await lab.delay("w1", 0);
      assert.doesNotMatch((await lab.exec("w1", ["tc", "qdisc", "show", "dev", "eth0"])).stdout, /netem/);
    } else {
      assert.ok(outcome instanceof UnavailableError, `unexpected failure: ${errorMessage(outcome)}`);
      assert.match(outcome.message, /netem/);
    }
  });
});

describe("lab down", { skip: skipReason }, () => {
  test("down removes processes, containers, mounts, cgroups, namespaces and links, even after kill -9 of shoald", async (t) => {
    const dir = await mkdtemp(join(tmpdir(), "shoal-lab-"));
    t.after(async () => {
      await Lab.downByName("t-down", { logger });
      await rm(dir, { recursive: true, force: true });
    });
    const lab = await Lab.up({ name: "t-down", managers: 1, workers: 1, dir, logger });
    const created = await lab.exec("m1", ["shoal", "service", "create", "--detach", "--replicas", "2", "--name", "d", "shoal-demo/busybox", "sleep", "3600"]);
    assert.equal(created.code, 0, created.stderr);
    await waitFor("two running containers", async () => {
      const counts = await Promise.all(["m1", "w1"].map(async (host) => (await lab.exec(host, ["docker", "ps", "-q"])).stdout.trim().split("\n").filter((line) => line !== "").length));
      return counts[0] === 1 && counts[1] === 1 ? true : undefined;
    }, { timeoutMs: 30_000, intervalMs: 250 });
    const seen = await traces(lab);
    assert.ok(seen.pids.length >= 4, `expected shoald, conmon and containers in the lab's namespaces, saw ${seen.pids.length} processes`);
    await lab.kill("w1");
    await Lab.downByName("t-down", { logger });
    assert.deepEqual(await leftovers("t-down", seen), []);
  });

  test("after kill -9 of the process bringing a lab up, up over the wreck rebuilds it and down removes everything", async (t) => {
    const dir = await mkdtemp(join(tmpdir(), "shoal-lab-"));
    t.after(async () => {
      await Lab.downByName("t-crash", { logger });
      await rm(dir, { recursive: true, force: true });
    });
    const child = spawn(process.execPath, [labMain, "--name", "t-crash", "up", "--managers", "1", "--workers", "1", "--dir", dir], { stdio: "ignore" });
    const exited = new Promise((resolve) => child.once("exit", resolve));
    // Killed once a daemon runs: the lab is half made (state, namespaces, one or two shoalds).
    await waitFor("the first shoald of t-crash", () => (existsSync(join(dir, "t-crash", "m1", "shoald.sock")) ? true : undefined), { timeoutMs: 30_000 });
    child.kill("SIGKILL");
    await exited;
    const crashed = await traces(await Lab.open("t-crash", { logger }));
    assert.ok(crashed.pids.length >= 1, "no daemon ran in the half-made lab");
    // `up` over the wreck removes it first, then builds a working lab.
    const lab = await Lab.up({ name: "t-crash", managers: 1, workers: 1, dir, logger });
    for (const pid of crashed.pids) assert.equal(await processAlive(pid), false, `process ${pid} of the crashed run survived up`);
    assert.equal((await lab.nodes()).filter((node) => node.state === "ready").length, 2);
    const seen = await traces(lab);
    await Lab.downByName("t-crash", { logger });
    assert.deepEqual(await leftovers("t-crash", seen), []);
  });
});
