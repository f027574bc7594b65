import assert from "node:assert/strict";
import { test } from "node:test";

import { parseDaemonHost } from "../../src/cli/client.js";
import { formatBytes, formatTable } from "../../src/cli/output.js";

test("daemon hosts: unix URLs, bare paths, tcp and http addresses", () => {
  assert.deepEqual(parseDaemonHost("unix:///run/shoal/shoald.sock"), { kind: "unix", path: "/run/shoal/shoald.sock" });
  assert.deepEqual(parseDaemonHost("/tmp/x.sock"), { kind: "unix", path: "/tmp/x.sock" });
  assert.deepEqual(parseDaemonHost("tcp://10.0.0.2:2375"), { kind: "tcp", host: "10.0.0.2", port: 2375 });
  assert.deepEqual(parseDaemonHost("http://[::1]:2375"), { kind: "tcp", host: "::1", port: 2375 });
  assert.throws(() => parseDaemonHost("unix://relative.sock"), /invalid daemon host/);
  assert.throws(() => parseDaemonHost("tcp://nohost"), /invalid daemon host/);
});

test("bytes print in binary units like docker's", () => {
  assert.equal(formatBytes(512), "512B");
  assert.equal(formatBytes(1536), "1.5KiB");
  assert.equal(formatBytes(25_269_825_536), "23.53GiB");
});

test("tables pad every column but the last", () => {
  assert.equal(formatTable(["ID", "NAME"], [["1", "web"], ["222", "db"]]), "ID    NAME\n1     web\n222   db\n");
});
