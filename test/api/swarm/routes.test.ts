import assert from "node:assert/strict";
import { describe, test, type TestContext } from "node:test";

import type { ServiceLogMessage, ServiceLogSource } from "../../../src/api/docker-swarm/index.js";
import { notManagerMessages } from "../../../src/manager/controlapi/index.js";
import { dockerCreateFull, dockerCreateGlobal, dockerCreateMinimal } from "./docker-bodies.js";
import { createSwarmApi, LocalClusterControl } from "./harness.js";

type Json = Record<string, unknown>;

async function manager(t: TestContext, logs?: ServiceLogSource) {
  const control = new LocalClusterControl();
  const api = await createSwarmApi(control, logs);
  t.after(() => api.close());
  const init = await api.app.inject({ method: "POST", url: "/v1.47/swarm/init", payload: { ListenAddr: "0.0.0.0:2377", Spec: { Labels: null, Orchestration: {}, Raft: { ElectionTick: 0, HeartbeatTick: 0 }, Dispatcher: {}, CAConfig: {}, TaskDefaults: {}, EncryptionConfig: { AutoLockManagers: false } } } });
  assert.equal(init.statusCode, 200, init.body);
  assert.equal(init.json<string>(), control.nodeId);
  const request = async (method: "GET" | "POST" | "DELETE", url: string, payload?: unknown) => {
    const response = await api.app.inject({ method, url: `/v1.47${url}`, ...(payload === undefined ? {} : { payload: JSON.stringify(payload), headers: { "content-type": "application/json" } }) });
    return { status: response.statusCode, body: response.body, json: () => response.json<Json>(), raw: response.rawPayload, headers: response.headers };
  };
  return { control, api, request };
}

function asyncIterableOf<T>(items: readonly T[]): AsyncIterable<T> {
  return {
    [Symbol.asyncIterator]() {
      let index = 0;
      return {
        next: (): Promise<IteratorResult<T, undefined>> => {
          const item = items[index];
          index += 1;
          return Promise.resolve(item === undefined ? { done: true, value: undefined } : { done: false, value: item });
        },
      };
    },
  };
}

function path(value: unknown, ...keys: string[]): unknown {
  let current = value;
  for (const key of keys) current = typeof current === "object" && current !== null ? Reflect.get(current, key) : undefined;
  return current;
}

describe("swarm REST routes", () => {
  test("a node outside a swarm, or a worker, answers 503 with docker's text", async (t) => {
    const control = new LocalClusterControl();
    const api = await createSwarmApi(control);
    t.after(() => api.close());
    for (const url of ["/swarm", "/services", "/nodes", "/tasks", "/services/web", "/swarm/unlockkey"]) {
      const response = await api.app.inject({ method: "GET", url: `/v1.47${url}` });
      assert.equal(response.statusCode, 503, url);
      assert.equal(response.json<{ message: string }>().message, notManagerMessages.none);
    }
    const create = await api.app.inject({ method: "POST", url: "/services/create", payload: dockerCreateMinimal });
    assert.equal(create.statusCode, 503);
    control.state = "worker";
    const asWorker = await api.app.inject({ method: "GET", url: "/nodes" });
    assert.equal(asWorker.statusCode, 503);
    assert.equal(asWorker.json<{ message: string }>().message, notManagerMessages.worker);
  });

  test("init, then GET /swarm shows the cluster with tokens; a second init is refused", async (t) => {
    const { request } = await manager(t);
    const swarm = await request("GET", "/swarm");
    assert.equal(swarm.status, 200);
    assert.equal(path(swarm.json(), "Spec", "Orchestration", "TaskHistoryRetentionLimit"), 5);
    assert.equal(path(swarm.json(), "Spec", "Dispatcher", "HeartbeatPeriod"), 1_000_000_000);
    assert.match(String(path(swarm.json(), "JoinTokens", "Worker")), /^SWMTKN-1-/);
    const again = await request("POST", "/swarm/init", {});
    assert.equal(again.status, 412);
  });

  test("docker's minimal create body: create, inspect by name, defaults filled", async (t) => {
    const { request, control } = await manager(t);
    const created = await request("POST", "/services/create", dockerCreateMinimal);
    assert.equal(created.status, 201, created.body);
    const id = String(created.json()["ID"]);
    const inspected = await request("GET", "/services/web");
    assert.equal(inspected.status, 200);
    const service = inspected.json();
    assert.equal(service["ID"], id);
    assert.equal(path(service, "Version", "Index"), control.store.version);
    assert.equal(path(service, "Spec", "Mode", "Replicated", "Replicas"), 3);
    assert.deepEqual(path(service, "Spec", "TaskTemplate", "ContainerSpec", "Args"), ["sleep", "1d"]);
    assert.equal(path(service, "Spec", "TaskTemplate", "ContainerSpec", "StopGracePeriod"), 10_000_000_000);
    assert.equal(path(service, "Spec", "TaskTemplate", "RestartPolicy", "Delay"), 5_000_000_000);
    assert.equal(path(service, "Spec", "UpdateConfig", "FailureAction"), "pause");
    const global = await request("POST", "/services/create", dockerCreateGlobal);
    assert.equal(global.status, 201, global.body);
    assert.deepEqual(path((await request("GET", "/services/g")).json(), "Spec", "Mode"), { Global: {} });
  });

  test("a full docker body round-trips: inspect's Spec sent back as an update changes nothing", async (t) => {
    const { request } = await manager(t);
    assert.equal((await request("POST", "/services/create", dockerCreateFull)).status, 201);
    const first = (await request("GET", "/services/web2")).json();
    const spec = path(first, "Spec");
    assert.deepEqual(path(spec, "TaskTemplate", "ContainerSpec", "Mounts"), dockerCreateFull.TaskTemplate.ContainerSpec.Mounts);
    assert.deepEqual(path(spec, "TaskTemplate", "Resources"), dockerCreateFull.TaskTemplate.Resources);
    assert.deepEqual(path(spec, "TaskTemplate", "RestartPolicy"), dockerCreateFull.TaskTemplate.RestartPolicy);
    assert.deepEqual(path(spec, "TaskTemplate", "Placement"), dockerCreateFull.TaskTemplate.Placement);
    assert.deepEqual(path(spec, "UpdateConfig"), dockerCreateFull.UpdateConfig);
    assert.deepEqual(path(spec, "RollbackConfig"), dockerCreateFull.RollbackConfig);
    assert.deepEqual(path(spec, "EndpointSpec"), dockerCreateFull.EndpointSpec);
    assert.equal(path(spec, "TaskTemplate", "ContainerSpec", "Healthcheck", "Interval"), 5_000_000_000);
    const version = Number(path(first, "Version", "Index"));
    const same = await request("POST", `/services/web2/update?version=${version}`, spec);
    assert.equal(same.status, 200, same.body);
    const second = (await request("GET", "/services/web2")).json();
    assert.deepEqual(path(second, "Spec"), spec);
    assert.ok(Number(path(second, "Version", "Index")) > version);
  });

  test("update with a version scales; a stale version is 409 update out of sequence; rollback restores", async (t) => {
    const { request, control } = await manager(t);
    await request("POST", "/services/create", dockerCreateMinimal);
    const before = (await request("GET", "/services/web")).json();
    const version = Number(path(before, "Version", "Index"));
    const scaled = { ...dockerCreateMinimal, Mode: { Replicated: { Replicas: 7 } } };
    assert.equal((await request("POST", `/services/web/update?version=${version}`, scaled)).status, 200);
    const after = (await request("GET", "/services/web")).json();
    assert.equal(path(after, "Spec", "Mode", "Replicated", "Replicas"), 7);
    assert.equal(path(after, "PreviousSpec", "Mode", "Replicated", "Replicas"), 3);
    const storeVersion = control.store.version;
    const stale = await request("POST", `/services/web/update?version=${version}`, scaled);
    assert.equal(stale.status, 409);
    assert.match(String(stale.json()["message"]), /update out of sequence/);
    assert.equal(control.store.version, storeVersion);
    const missing = await request("POST", "/services/web/update", scaled);
    assert.equal(missing.status, 400);
    assert.match(String(missing.json()["message"]), /version is required/);
    const rollback = await request("POST", `/services/web/update?version=${String(path(after, "Version", "Index"))}&rollback=previous`, after["Spec"]);
    assert.equal(rollback.status, 200, rollback.body);
    assert.equal(path((await request("GET", "/services/web")).json(), "Spec", "Mode", "Replicated", "Replicas"), 3);
  });

  test("bad specs are 400 naming the Docker field, and the store does not move", async (t) => {
    const { request, control } = await manager(t);
    const template = dockerCreateMinimal.TaskTemplate;
    const cases: Array<[unknown, RegExp]> = [
      [{ ...dockerCreateMinimal, Mode: { Replicated: { Replicas: -1 } } }, /^Mode\.Replicated\.Replicas: /],
      [{ ...dockerCreateMinimal, Mode: { Replicated: { Replicas: 2.5 } } }, /^Mode\.Replicated\.Replicas: .*whole number/],
      [{ ...dockerCreateMinimal, Colour: "red" }, /^Spec\.Colour: unknown field/],
      [{ ...dockerCreateMinimal, TaskTemplate: { ...template, ContainerSpec: { ...template.ContainerSpec, Colour: 1 } } }, /^TaskTemplate\.ContainerSpec\.Colour: unknown field/],
      [{ ...dockerCreateMinimal, TaskTemplate: { ...template, Placement: { Constraints: ["node.role~~x"] } } }, /^TaskTemplate\.Placement\.Constraints\[0\]: /],
      [{ ...dockerCreateMinimal, Name: "no_underscores" }, /^Name: .*DNS label/],
      [{ ...dockerCreateMinimal, Labels: { big: "x".repeat(5_000) } }, /^Labels\.big: /],
      [{ ...dockerCreateMinimal, TaskTemplate: { ...template, ContainerSpec: { Image: "UPPER/case::x" } } }, /^TaskTemplate\.ContainerSpec\.Image: .*not a valid image reference/],
      [{ ...dockerCreateMinimal, TaskTemplate: { ...template, ContainerSpec: { Image: "busybox", Hostname: "h" } } }, /^TaskTemplate\.ContainerSpec\.Hostname: is not supported/],
      [{ ...dockerCreateMinimal, TaskTemplate: { ...template, RestartPolicy: { Delay: -5 } } }, /^TaskTemplate\.RestartPolicy\.Delay: /],
    ];
    const version = control.store.version;
    for (const [body, message] of cases) {
      const response = await request("POST", "/services/create", body);
      assert.equal(response.status, 400, `${String(message)}: ${response.body}`);
      assert.match(String(response.json()["message"]), message);
    }
    assert.equal(control.store.version, version);
    assert.deepEqual(JSON.parse((await request("GET", "/services")).body), []);
  });

  test("list filters, invalid filters and status=true", async (t) => {
    const { request, control } = await manager(t);
    await request("POST", "/services/create", dockerCreateMinimal);
    await request("POST", "/services/create", dockerCreateGlobal);
    const byName = JSON.parse((await request("GET", `/services?filters=${encodeURIComponent('{"name":{"web":true}}')}`)).body) as Json[];
    assert.deepEqual(byName.map((service) => path(service, "Spec", "Name")), ["web"]);
    const byMode = JSON.parse((await request("GET", `/services?filters=${encodeURIComponent('{"mode":["global"]}')}`)).body) as Json[];
    assert.deepEqual(byMode.map((service) => path(service, "Spec", "Name")), ["g"]);
    const invalid = await request("GET", `/services?filters=${encodeURIComponent('{"colour":{"red":true}}')}`);
    assert.equal(invalid.status, 400);
    assert.match(String(invalid.json()["message"]), /invalid filter 'colour'/);
    const web = control.api.getService("web");
    await control.store.update((tx) => {
      tx.create("task", {
        id: "task000000000000000000001", serviceId: web.id, serviceName: web.spec.name, slot: 1, nodeId: control.nodeId, desiredState: "running",
        spec: web.spec.taskTemplate, specVersion: web.specVersion, endpoint: web.spec.endpointSpec, attempt: 0,
        status: { state: "running", timestamp: 1_700_000_000_000, message: "started", err: "" },
      });
    });
    const withStatus = JSON.parse((await request("GET", "/services?status=true")).body) as Json[];
    const status = withStatus.find((service) => path(service, "Spec", "Name") === "web")?.["ServiceStatus"];
    assert.deepEqual(status, { RunningTasks: 1, DesiredTasks: 3, CompletedTasks: 0 });
    assert.equal((JSON.parse((await request("GET", "/services")).body) as Json[])[0]?.["ServiceStatus"], undefined);
  });

  test("tasks: list with docker's service and _up-to-date filters, inspect", async (t) => {
    const { request, control } = await manager(t);
    await request("POST", "/services/create", dockerCreateMinimal);
    const web = control.api.getService("web");
    await control.store.update((tx) => {
      for (const [id, slot, state] of [["taska00000000000000000001", 1, "running"], ["taskb00000000000000000002", 2, "pending"]] as const) {
        tx.create("task", {
          id, serviceId: web.id, serviceName: web.spec.name, slot, nodeId: state === "running" ? control.nodeId : "", desiredState: "running",
          spec: web.spec.taskTemplate, specVersion: web.specVersion, endpoint: web.spec.endpointSpec, attempt: 0,
          status: { state, timestamp: 1_700_000_000_000, message: state === "pending" ? "no suitable node (insufficient memory on 1 node)" : "started", err: "" },
        });
      }
    });
    const filters = encodeURIComponent(JSON.stringify({ service: { web: true }, "_up-to-date": { true: true } }));
    const listed = JSON.parse((await request("GET", `/tasks?filters=${filters}`)).body) as Json[];
    assert.deepEqual(listed.map((task) => task["Slot"]).sort(), [1, 2]);
    const pending = listed.find((task) => task["Slot"] === 2);
    assert.equal(path(pending, "Status", "State"), "pending");
    assert.equal(path(pending, "Status", "Err"), "no suitable node (insufficient memory on 1 node)");
    assert.equal(path(pending, "DesiredState"), "running");
    // Listed again after a change to one task and a rename of the service: both show.
    await control.store.update((tx) => {
      const task = tx.get("task", "taskb00000000000000000002");
      assert.ok(task !== undefined);
      tx.update("task", { ...task, status: { ...task.status, message: "no suitable node (insufficient memory on 2 nodes)" } });
    });
    const again = JSON.parse((await request("GET", `/tasks?filters=${filters}`)).body) as Json[];
    assert.equal(path(again.find((task) => task["Slot"] === 2), "Status", "Err"), "no suitable node (insufficient memory on 2 nodes)");
    assert.deepEqual(again.find((task) => task["Slot"] === 1), listed.find((task) => task["Slot"] === 1), "an unchanged task lists the same");
    await control.store.update((tx) => {
      const service = tx.get("service", web.id);
      assert.ok(service !== undefined);
      tx.update("service", { ...service, spec: { ...service.spec, labels: { tier: "front" } } });
    });
    const relabelled = JSON.parse((await request("GET", `/tasks?filters=${filters}`)).body) as Json[];
    assert.deepEqual(relabelled.map((task) => path(task, "ServiceAnnotations", "Labels")), [{ tier: "front" }, { tier: "front" }]);
    const one = await request("GET", "/tasks/taska");
    assert.equal(one.status, 200);
    assert.equal(one.json()["NodeID"], control.nodeId);
    assert.equal(path(one.json(), "Spec", "ContainerSpec", "Image"), "busybox:latest");
    assert.equal((await request("GET", `/tasks?filters=${encodeURIComponent('{"desired-state":{"sleeping":true}}')}`)).status, 400);
  });

  test("nodes: list with ManagerStatus, update with version, manager removal refused", async (t) => {
    const { request, control } = await manager(t);
    const nodes = JSON.parse((await request("GET", "/nodes")).body) as Json[];
    assert.equal(nodes.length, 1);
    assert.deepEqual(path(nodes[0], "ManagerStatus"), { Leader: true, Reachability: "reachable", Addr: "127.0.0.1:2377" });
    assert.equal(path(nodes[0], "Description", "Hostname"), "host0");
    const node = (await request("GET", `/nodes/${control.nodeId}`)).json();
    const version = Number(path(node, "Version", "Index"));
    const drain = { ...(node["Spec"] as Json), Availability: "drain", Labels: { zone: "a" } };
    assert.equal((await request("POST", `/nodes/${control.nodeId}/update?version=${version}`, drain)).status, 200);
    assert.equal(path((await request("GET", "/nodes/host0")).json(), "Spec", "Availability"), "drain");
    assert.equal((await request("POST", `/nodes/${control.nodeId}/update?version=${version}`, drain)).status, 409);
    const removal = await request("DELETE", `/nodes/${control.nodeId}`);
    assert.equal(removal.status, 412);
    assert.match(String(removal.json()["message"]), /must be demoted/);
  });

  test("swarm update rotates tokens with a version; unlock key is 501", async (t) => {
    const { request } = await manager(t);
    const swarm = (await request("GET", "/swarm")).json();
    const version = Number(path(swarm, "Version", "Index"));
    const spec = { ...(swarm["Spec"] as Json), Orchestration: { TaskHistoryRetentionLimit: 2 } };
    const updated = await request("POST", `/swarm/update?version=${version}&rotateWorkerToken=true`, spec);
    assert.equal(updated.status, 200, updated.body);
    const after = (await request("GET", "/swarm")).json();
    assert.equal(path(after, "Spec", "Orchestration", "TaskHistoryRetentionLimit"), 2);
    assert.notEqual(path(after, "JoinTokens", "Worker"), path(swarm, "JoinTokens", "Worker"));
    assert.equal(path(after, "JoinTokens", "Manager"), path(swarm, "JoinTokens", "Manager"));
    assert.equal((await request("POST", `/swarm/update?version=${version}`, spec)).status, 409);
    const autolock = await request("POST", `/swarm/update?version=${String(path(after, "Version", "Index"))}`, { ...spec, EncryptionConfig: { AutoLockManagers: true } });
    assert.equal(autolock.status, 400);
    assert.equal((await request("GET", "/swarm/unlockkey")).status, 501);
  });

  test("logs: 501 without a source; with one, docker's framing with details", async (t) => {
    const plain = await manager(t);
    await plain.request("POST", "/services/create", dockerCreateMinimal);
    const missing = await plain.request("GET", "/services/web/logs?stdout=1");
    assert.equal(missing.status, 501);
    assert.match(String(missing.json()["message"]), /no log source/);
    const seen: unknown[] = [];
    const source: ServiceLogSource = {
      logs(selector, options) {
        seen.push(selector, options.tail);
        const context = { nodeId: "n1", serviceId: "s1", taskId: "t1" };
        return asyncIterableOf<ServiceLogMessage>([
          { stream: "stdout", line: Buffer.from("hello\n"), timestampMs: 0, context },
          { stream: "stderr", line: Buffer.from("oops\n"), timestampMs: 0, context },
        ]);
      },
    };
    const withLogs = await manager(t, source);
    await withLogs.request("POST", "/services/create", dockerCreateMinimal);
    const noStream = await withLogs.request("GET", "/services/web/logs");
    assert.equal(noStream.status, 400);
    const response = await withLogs.request("GET", "/services/web/logs?stdout=1&stderr=1&details=1&tail=10");
    assert.equal(response.status, 200);
    assert.equal(response.headers["content-type"], "application/vnd.docker.multiplexed-stream");
    const raw = response.raw;
    const details = "com.docker.swarm.node.id=n1,com.docker.swarm.service.id=s1,com.docker.swarm.task.id=t1 ";
    const first = Buffer.from(`${details}hello\n`);
    assert.equal(raw[0], 1);
    assert.equal(raw.readUInt32BE(4), first.length);
    assert.equal(raw.subarray(8, 8 + first.length).toString(), first.toString());
    const second = raw.subarray(8 + first.length);
    assert.equal(second[0], 2);
    assert.equal(second.subarray(8).toString(), `${details}oops\n`);
    assert.equal(seen[1], 10);
    assert.equal(path(seen[0], "kind"), "service");
  });
});
