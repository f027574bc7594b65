import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";

import { credentials } from "@grpc/grpc-js";

import { loadHealthProto } from "../../src/rpc/index.js";
import { removeStoppedEngineState } from "../../src/engine/index.js";
import { shoaldPath, shoalPath, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";
import { run } from "../helpers/run.js";

const dockerCli = "/usr/local/bin/docker";

describe("shoald", () => {
  let daemon: TestDaemon;

  before(async () => {
    daemon = await startTestDaemon();
  });
  after(async () => {
    await daemon.cleanup();
  });

  test("shoal info answers from the running daemon with its node id", async () => {
    const result = await run(process.execPath, [shoalPath, "-H", daemon.host, "info", "--format", "json"]);
    assert.equal(result.code, 0, result.stderr);
    const info: unknown = JSON.parse(result.stdout);
    assert.ok(typeof info === "object" && info !== null && "ID" in info);
    assert.equal(info.ID, daemon.nodeId);
    assert.equal((await readFile(join(daemon.dataDir, "node-id"), "utf8")).trim(), daemon.nodeId);
  });

  test("shoal version and info print tables, SHOAL_HOST selects the daemon", async () => {
    const version = await run(process.execPath, [shoalPath, "version"], { env: { SHOAL_HOST: daemon.host } });
    assert.equal(version.code, 0, version.stderr);
    assert.match(version.stdout, /Server: shoal/);
    assert.match(version.stdout, /API version:\s+1\.47 \(minimum version 1\.24\)/);
    const info = await run(process.execPath, [shoalPath, "info"], { env: { SHOAL_HOST: daemon.host } });
    assert.equal(info.code, 0, info.stderr);
    assert.match(info.stdout, new RegExp(`ID: ${daemon.nodeId}`));
  });

  test("the gRPC Health service answers on the cluster address", async () => {
    const proto = loadHealthProto();
    const client = new proto.shoal.v1.Health(daemon.grpcAddress, credentials.createInsecure());
    try {
      const answer = await new Promise<{ status: string; nodeId: string }>((resolve, reject) => {
        client.Check({ service: "" }, (error, response) => {
          if (error !== null || response === undefined) reject(error ?? new Error("no response"));
          else resolve(response);
        });
      });
      assert.equal(answer.status, "SERVING");
      assert.equal(answer.nodeId, daemon.nodeId);
      const unknown = await new Promise<string>((resolve, reject) => {
        client.Check({ service: "no-such-part" }, (error, response) => {
          if (error !== null || response === undefined) reject(error ?? new Error("no response"));
          else resolve(response.status);
        });
      });
      assert.equal(unknown, "SERVICE_UNKNOWN");
    } finally {
      client.close();
    }
  });

  test("a second daemon on the same data dir is refused, naming the owner", async () => {
    const result = await run(process.execPath, [
      shoaldPath,
      "--data-dir", daemon.dataDir,
      "--run-dir", join(daemon.dir, "run2"),
      "--socket", join(daemon.dir, "other.sock"),
      "--listen-addr", "127.0.0.1:0",
    ]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, new RegExp(`in use by shoald pid ${daemon.process.pid}`));
    assert.equal(existsSync(join(daemon.dir, "other.sock")), false);
  });

  test("the docker CLI drives it: docker version and docker info", { skip: existsSync(dockerCli) ? false : `${dockerCli} is not installed` }, async () => {
    const env = { DOCKER_HOST: daemon.host, DOCKER_CONFIG: join(daemon.dir, "docker-config") };
    const version = await run(dockerCli, ["version", "--format", "{{.Server.Version}} {{.Server.APIVersion}}"], { env });
    assert.equal(version.code, 0, version.stderr);
    assert.equal(version.stdout.trim(), "0.1.0 1.47");
    const info = await run(dockerCli, ["info", "--format", "{{.ID}} {{.Swarm.LocalNodeState}}"], { env });
    assert.equal(info.code, 0, info.stderr);
    assert.equal(info.stdout.trim(), `${daemon.nodeId} inactive`);
    const plain = await run(dockerCli, ["info"], { env });
    assert.equal(plain.code, 0, plain.stderr);
    assert.doesNotMatch(plain.stderr + plain.stdout, /error/i);
  });
});

test("SIGTERM stops shoald cleanly: exit 0, socket and lock removed", async () => {
  const daemon = await startTestDaemon();
  try {
    const code = await daemon.stop();
    assert.equal(code, 0, daemon.log());
    assert.equal(existsSync(daemon.socketPath), false, "socket left behind");
    assert.equal(existsSync(join(daemon.dataDir, "shoald.lock")), false, "lock left behind");
    assert.match(daemon.log(), /shoald stopped/);
  } finally {
    await daemon.cleanup();
  }
});

test("SIGTERM while shoald is still starting lets the start finish, then stops cleanly", async () => {
  const dir = await mkdtemp(join(tmpdir(), "shoal-test-"));
  const dataDir = join(dir, "data");
  const socketPath = join(dir, "shoald.sock");
  const child = spawn(process.execPath, [shoaldPath, "--data-dir", dataDir, "--run-dir", join(dir, "run"), "--socket", socketPath, "--listen-addr", "127.0.0.1:0"], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let log = "";
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  try {
    child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
      if (!log.includes("shoald starting") && (log + chunk).includes("shoald starting")) child.kill("SIGTERM");
      log += chunk;
    });
    assert.equal(await exited, 0, log);
    assert.match(log, /shoald stopped/);
    assert.equal(existsSync(socketPath), false, "socket left behind");
    assert.equal(existsSync(join(dataDir, "shoald.lock")), false, "lock left behind");
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGKILL");
      await exited;
    }
    await removeStoppedEngineState(dataDir, join(dir, "run"));
    await rm(dir, { recursive: true, force: true });
  }
});

test("a data dir left by a killed daemon is taken over", async () => {
  const first = await startTestDaemon();
  try {
    first.process.kill("SIGKILL");
    await first.stop();
    const second = await startTestDaemon({ dir: first.dir });
    try {
      assert.equal(second.nodeId, first.nodeId, "the node id must survive restarts");
    } finally {
      await second.stop();
    }
  } finally {
    await first.cleanup();
  }
});

test("shoal says how to start the daemon when it is not running, and exits non-zero", async () => {
  const result = await run(process.execPath, [shoalPath, "-H", "unix:///nonexistent/shoald.sock", "info"]);
  assert.equal(result.code, 1);
  assert.match(result.stderr, /cannot reach shoald at unix:\/\/\/nonexistent\/shoald\.sock \(ENOENT\)/);
  assert.match(result.stderr, /Start it with `shoald`/);
});
