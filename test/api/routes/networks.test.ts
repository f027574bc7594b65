import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { test, type TestContext } from "node:test";

import { Command } from "commander";
import { pino } from "pino";

import { networkRoutes } from "../../../src/api/routes/networks.js";
import { serviceRoutes } from "../../../src/api/routes/services.js";
import { createApiServer } from "../../../src/api/server.js";
import { ApiClient } from "../../../src/cli/client.js";
import { registerNetworkCommands } from "../../../src/cli/commands/network.js";
import { createCliContext } from "../../../src/cli/context.js";
import { asArray, asRecord } from "../../../src/cli/parse.js";
import { Allocator } from "../../../src/manager/allocator/index.js";
import { LocalClusterControl } from "../swarm/harness.js";
import { waitFor } from "../../helpers/wait.js";

async function start(t: TestContext): Promise<{ control: LocalClusterControl; client: ApiClient; run: (...argv: string[]) => Promise<string> }> {
  const control = new LocalClusterControl();
  const api = await createApiServer({ logger: pino({ level: "silent" }), registrars: [serviceRoutes({ control }), networkRoutes({ control })] });
  const dir = await mkdtemp(join(tmpdir(), "shoal-net-routes-"));
  const socket = join(dir, "api.sock");
  await api.listen({ kind: "unix", path: socket });
  const controller = new AbortController();
  let allocating: Promise<void> = Promise.resolve();
  t.after(async () => {
    controller.abort();
    await allocating;
    await api.close();
    await rm(dir, { recursive: true, force: true });
  });
  const run = async (...argv: string[]): Promise<string> => {
    const out = new PassThrough();
    const chunks: Buffer[] = [];
    out.on("data", (chunk: Buffer) => chunks.push(chunk));
    const program = new Command("shoal").exitOverride();
    registerNetworkCommands(program, createCliContext({ host: () => `unix://${socket}`, env: {}, out, err: new PassThrough() }));
    await program.parseAsync(argv, { from: "user" });
    return Buffer.concat(chunks).toString("utf8");
  };
  const client = new ApiClient({ kind: "unix", path: socket });
  assert.deepEqual(await client.json("GET", "/networks"), [], "a node outside a swarm lists no cluster networks");
  await control.swarmInit();
  allocating = new Allocator({ store: control.store, logger: pino({ level: "silent" }) }).run(controller.signal);
  return { control, client, run };
}

test("shoal network create, ls, inspect and rm through the Docker routes (none listed outside a swarm)", async (t) => {
  const { run, client } = await start(t);
  await waitFor("the ingress network", async () => asArray(await client.json("GET", "/networks"), "list").length === 1 || undefined, { timeoutMs: 5_000 });
  const id = (await run("network", "create", "-d", "overlay", "--label", "team=a", "backend")).trim();
  assert.match(id, /^\w+$/u);
  const ls = await run("network", "ls");
  assert.match(ls, /^NETWORK ID\s+NAME\s+DRIVER\s+SCOPE\s+SUBNET\n/u);
  assert.match(ls, new RegExp(`${id.slice(0, 12)}\\s+backend\\s+overlay\\s+swarm\\s+10\\.24\\d\\.\\d+\\.0/24`, "u"));
  assert.match(ls, /\s+ingress\s+overlay\s+swarm\s/u);
  const [inspected] = asArray(JSON.parse(await run("network", "inspect", "backend")), "inspect");
  const record = asRecord(inspected, "network");
  assert.equal(record["Id"], id);
  assert.deepEqual(record["Labels"], { team: "a" });
  assert.equal(record["Ingress"], false);
  await assert.rejects(run("network", "create", "backend"), /already exists/u);
  await assert.rejects(client.json("POST", "/networks/create", { body: { Name: "b2", Driver: "bridge" } }), /driver "overlay"/u);
  const filtered = asArray(await client.json("GET", "/networks", { query: { filters: JSON.stringify({ name: { back: true } }) } }), "list");
  assert.equal(filtered.length, 1);

  await client.json("POST", "/services/create", { body: { Name: "web", TaskTemplate: { ContainerSpec: { Image: "busybox" }, Networks: [{ Target: "backend" }] } } });
  await assert.rejects(run("network", "rm", "backend"), /in use by service\(s\) web/u);
  await assert.rejects(
    client.json("POST", "/services/create", { body: { Name: "web2", TaskTemplate: { ContainerSpec: { Image: "busybox" }, Networks: [{ Target: "missing" }] } } }),
    /network "missing" not found/u,
  );
  await client.json("DELETE", "/services/web");
  assert.equal(await run("network", "rm", "backend"), "backend\n");
  await assert.rejects(client.json("GET", `/networks/${id}`), /no network/u);
});
