import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

import { InvalidArgumentError } from "../../src/common/errors.js";
import { parseHostPort, readConfigFile, resolveDaemonConfig } from "../../src/daemon/config.js";

test("a flag wins over the environment, which wins over the file, which wins over the default", () => {
  const config = resolveDaemonConfig({
    flags: { dataDir: "/flag" },
    env: { SHOAL_DATA_DIR: "/env", SHOAL_SOCKET: "/env.sock" },
    file: { dataDir: "/file", socket: "/file.sock", logLevel: "debug" },
  });
  assert.equal(config.dataDir, "/flag");
  assert.equal(config.socketPath, "/env.sock");
  assert.equal(config.logLevel, "debug");
  assert.deepEqual(config.listenAddr, { host: "0.0.0.0", port: 4242 });
  assert.equal(config.apiListen, null);
  assert.equal(config.advertiseAddr, null);
});

test("host:port forms: IPv4, [IPv6], :port; bad ones name the flag", () => {
  assert.deepEqual(parseHostPort("127.0.0.1:80", "x"), { host: "127.0.0.1", port: 80 });
  assert.deepEqual(parseHostPort("[::1]:4242", "x"), { host: "::1", port: 4242 });
  assert.deepEqual(parseHostPort(":9", "x"), { host: "0.0.0.0", port: 9 });
  assert.throws(() => parseHostPort("localhost", "--listen-addr"), /--listen-addr "localhost" is not HOST:PORT/);
  assert.throws(() => parseHostPort("a:70000", "--listen-addr"), InvalidArgumentError);
});

test("an invalid log level is an InvalidArgumentError listing the valid ones", () => {
  assert.throws(() => resolveDaemonConfig({ flags: { logLevel: "loud" }, env: {}, file: {} }), /invalid log level "loud": use one of fatal, error/);
});

test("--raft-snapshot-interval takes a positive whole number; unset leaves raft's default", () => {
  assert.equal(resolveDaemonConfig({ flags: {}, env: {}, file: {} }).raftSnapshotInterval, null);
  assert.equal(resolveDaemonConfig({ flags: {}, env: { SHOAL_RAFT_SNAPSHOT_INTERVAL: "50" }, file: {} }).raftSnapshotInterval, 50);
  for (const bad of ["0", "-3", "1.5", "lots"]) {
    assert.throws(() => resolveDaemonConfig({ flags: { raftSnapshotInterval: bad }, env: {}, file: {} }), /--raft-snapshot-interval/);
  }
});

test("config files: unknown keys and non-string values are refused", async () => {
  const dir = await mkdtemp(join(tmpdir(), "shoal-config-"));
  try {
    const good = join(dir, "good.json");
    await writeFile(good, JSON.stringify({ dataDir: "/srv/shoal", listenAddr: "10.0.0.1:4242" }));
    assert.deepEqual(readConfigFile(good), { dataDir: "/srv/shoal", listenAddr: "10.0.0.1:4242" });
    const unknown = join(dir, "unknown.json");
    await writeFile(unknown, JSON.stringify({ dataDirectory: "/x" }));
    assert.throws(() => readConfigFile(unknown), /unknown setting "dataDirectory"/);
    const typed = join(dir, "typed.json");
    await writeFile(typed, JSON.stringify({ dataDir: 7 }));
    assert.throws(() => readConfigFile(typed), /setting "dataDir" must be a string/);
    const broken = join(dir, "broken.json");
    await writeFile(broken, "{");
    assert.throws(() => readConfigFile(broken), /cannot read config file/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
