import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { get } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";

import { shoalPath, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";
import { run, type RunResult } from "../helpers/run.js";
import { waitFor } from "../helpers/wait.js";
import { registrySkipReason, startRegistry } from "../engine/fixtures/registry.js";

const dockerCli = "/usr/local/bin/docker";
const rootReason = process.getuid?.() === 0 ? false : "needs root (mounts, namespaces, cgroups)";

function httpGet(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const request = get(url, { timeout: 2_000 }, (response) => {
      let body = "";
      response.setEncoding("utf8").on("data", (chunk: string) => (body += chunk)).on("end", () => resolve(body));
    });
    request.on("error", reject).on("timeout", () => request.destroy(new Error("timeout")));
  });
}

async function mountsUnder(path: string): Promise<string[]> {
  return (await readFile("/proc/self/mountinfo", "utf8")).split("\n").filter((line) => line.includes(path));
}

describe("the engine through shoald's REST API", { skip: rootReason }, () => {
  let daemon: TestDaemon;
  const shoal = (...args: string[]): Promise<RunResult> => run(process.execPath, [shoalPath, "-H", daemon.host, ...args], { timeoutMs: 60_000 });

  before(async () => {
    daemon = await startTestDaemon();
    const built = await shoal("image", "build-demo");
    assert.equal(built.code, 0, built.stderr);
  });
  after(async () => {
    await daemon.cleanup();
  });

  test("image build-demo loads both demo images", async () => {
    const list = await shoal("image", "ls");
    assert.match(list.stdout, /shoal-demo\/busybox\s+latest/);
    assert.match(list.stdout, /shoal-demo\/layered\s+latest/);
  });

  test("container run streams stdout and stderr apart and exits with the container's code; --rm leaves nothing", async () => {
    const result = await shoal("container", "run", "--rm", "--network", "none", "shoal-demo/busybox", "sh", "-c", "echo out; echo err >&2; exit 3");
    assert.equal(result.code, 3, result.stderr);
    assert.equal(result.stdout, "out\n");
    assert.equal(result.stderr, "err\n");
    const all = await shoal("container", "ls", "-a", "-q");
    assert.equal(all.stdout, "", "the --rm container is still listed");
    assert.deepEqual(await mountsUnder(daemon.dataDir), [], "a rootfs mount was left behind");
  });

  test("a published port answers from the host; exec returns output and exit code; logs and stop work", async () => {
    const started = await shoal("container", "run", "-d", "--name", "web", "-p", "127.0.0.1:18181:80", "shoal-demo/busybox", "httpd", "-f", "-p", "80", "-h", "/etc");
    assert.equal(started.code, 0, started.stderr);
    const id = started.stdout.trim();
    const hostname = await waitFor("httpd to answer on the published port", () => httpGet("http://127.0.0.1:18181/hostname").catch(() => undefined), { timeoutMs: 10_000 });
    assert.equal(hostname.trim(), id.slice(0, 12));
    const exec = await shoal("container", "exec", "web", "sh", "-c", "echo from exec; exit 4");
    assert.equal(exec.code, 4);
    assert.equal(exec.stdout, "from exec\n");
    const inspect = JSON.parse((await shoal("container", "inspect", "web")).stdout) as unknown;
    assert.ok(Array.isArray(inspect));
    const stop = await shoal("container", "stop", "-t", "1", "web");
    assert.equal(stop.code, 0, stop.stderr);
    const state = JSON.parse((await shoal("container", "inspect", "web")).stdout) as Array<{ State: { Running: boolean } }>;
    assert.equal(state[0]?.State.Running, false);
    assert.equal((await shoal("container", "rm", "web")).code, 0);
  });

  test("bad input: an unknown image and a port already published fail clearly and leave nothing", async () => {
    const unknown = await shoal("container", "run", "--pull", "never", "--network", "none", "no-such/image:1", "true");
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /no-such\/image/);
    const first = await shoal("container", "run", "-d", "--name", "holder", "-p", "127.0.0.1:18182:80", "shoal-demo/busybox", "httpd", "-f", "-p", "80");
    assert.equal(first.code, 0, first.stderr);
    const second = await shoal("container", "run", "-d", "--name", "clash", "-p", "127.0.0.1:18182:80", "shoal-demo/busybox", "httpd", "-f", "-p", "80");
    assert.equal(second.code, 1);
    assert.match(second.stderr, /18182/);
    await shoal("container", "rm", "-f", "holder", "clash");
    const left = await shoal("container", "ls", "-a", "-q");
    assert.equal(left.stdout, "");
    const health = await shoal("info");
    assert.equal(health.code, 0, "the daemon must stay healthy");
  });

  test("image push to a real registry, rm, and pull back", { skip: registrySkipReason }, async () => {
    const dir = await mkdtemp(join(tmpdir(), "shoal-registry-"));
    const registry = await startRegistry(dir);
    try {
      const name = `${registry.address}/demo/busybox:1`;
      assert.equal((await shoal("image", "tag", "shoal-demo/busybox", name)).code, 0);
      const pushed = await shoal("image", "push", name);
      assert.equal(pushed.code, 0, pushed.stderr);
      assert.equal((await shoal("image", "rm", name)).code, 0);
      const pulled = await shoal("image", "pull", name);
      assert.equal(pulled.code, 0, pulled.stderr);
      assert.match(pulled.stdout, /Digest: sha256:[a-f0-9]{64}/);
      const again = await shoal("image", "pull", name);
      assert.match(again.stdout, /Image is up to date/);
    } finally {
      await registry.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("the docker CLI drives containers: run -d, ps, exec, logs, stop, rm, images, inspect", { skip: existsSync(dockerCli) ? false : `${dockerCli} is not installed` }, async () => {
    const env = { DOCKER_HOST: daemon.host, DOCKER_CONFIG: join(daemon.dir, "docker-config") };
    const docker = (...args: string[]): Promise<RunResult> => run(dockerCli, args, { env, timeoutMs: 60_000 });
    const started = await docker("run", "-d", "--name", "dk", "--network", "none", "shoal-demo/busybox", "sh", "-c", "echo hello from docker; exec sleep 60");
    assert.equal(started.code, 0, started.stderr);
    assert.match((await docker("ps", "--format", "{{.Names}} {{.Status}}")).stdout, /^dk Up/m);
    const exec = await docker("exec", "dk", "sh", "-c", "echo in exec; exit 5");
    assert.equal(exec.code, 5, exec.stderr);
    assert.equal(exec.stdout, "in exec\n");
    const logs = await waitFor("docker logs to show the output", async () => {
      const result = await docker("logs", "dk");
      return result.stdout.includes("hello from docker") ? result : undefined;
    });
    assert.equal(logs.code, 0);
    assert.equal((await docker("stop", "-t", "1", "dk")).code, 0);
    assert.equal((await docker("rm", "dk")).code, 0);
    assert.match((await docker("images", "--format", "{{.Repository}}:{{.Tag}}")).stdout, /shoal-demo\/busybox:latest/);
    assert.match((await docker("image", "inspect", "--format", "{{.Id}}", "shoal-demo/busybox")).stdout, /^sha256:[a-f0-9]{64}$/m);
  });
});
