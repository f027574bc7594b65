import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  dockerFieldPath,
  dockerService,
  dockerServiceSpec,
  dockerTask,
  encodeLogFrames,
  logFrameBytesMax,
  nanosToMs,
  parseDockerFilters,
  parseSince,
  parseTail,
  readDockerServiceSpec,
  readDockerSwarmSpec,
  readSwarmInitRequest,
  readSwarmJoinRequest,
  taskFiltersFrom,
  taskFilterKeys,
} from "../../../src/api/docker-swarm/index.js";
import { InvalidArgumentError } from "../../../src/common/errors.js";
import { parseServiceSpec } from "../../../src/manager/objects/index.js";
import { newServiceTask } from "../../../src/manager/orchestrator/task.js";
import { dockerCreateFull } from "./docker-bodies.js";

describe("Docker <-> shoal mapping", () => {
  test("shoal spec paths become Docker field names", () => {
    assert.equal(dockerFieldPath("spec.mode.replicas"), "Mode.Replicated.Replicas");
    assert.equal(dockerFieldPath("spec.taskTemplate.containerSpec.stopGracePeriodMs"), "TaskTemplate.ContainerSpec.StopGracePeriod");
    assert.equal(dockerFieldPath("spec.taskTemplate.placement.platforms[1].os"), "TaskTemplate.Placement.Platforms[1].OS");
    assert.equal(dockerFieldPath("spec.taskTemplate.placement.preferences[0].spread"), "TaskTemplate.Placement.Preferences[0].Spread.SpreadDescriptor");
    assert.equal(dockerFieldPath("spec.taskTemplate.resources.limits.nanoCPUs"), "TaskTemplate.Resources.Limits.NanoCPUs");
    assert.equal(dockerFieldPath("spec.labels.com.example.key"), "Labels.com.example.key");
    assert.equal(dockerFieldPath("spec"), "Spec");
  });

  test("a service shows its allocated ports and VIPs, a task its network addresses", () => {
    const spec = parseServiceSpec(
      readDockerServiceSpec({ Name: "web", TaskTemplate: { ContainerSpec: { Image: "busybox" } }, EndpointSpec: { Ports: [{ TargetPort: 80 }] } }),
      "spec",
    );
    const meta = { version: 3, createdAt: 0, updatedAt: 0 };
    const service = {
      id: "svc1",
      meta,
      spec,
      specVersion: 1,
      endpoint: { virtualIps: [{ networkId: "net1", address: "10.240.1.2/24" }], publishedPorts: [{ protocol: "tcp" as const, publishedPort: 30001, targetPort: 80 }] },
    };
    const endpoint = dockerService(service)["Endpoint"];
    assert.deepEqual(endpoint, {
      Spec: { Mode: "vip", Ports: [{ Protocol: "tcp", TargetPort: 80, PublishedPort: 0, PublishMode: "ingress" }] },
      Ports: [{ Protocol: "tcp", TargetPort: 80, PublishedPort: 30001, PublishMode: "ingress" }],
      VirtualIPs: [{ NetworkID: "net1", Addr: "10.240.1.2/24" }],
    });
    const task = {
      ...newServiceTask({ id: "task1", service, slot: 1, nodeId: "node1", attempt: 0, desiredState: "running", now: 0, message: "created" }),
      meta,
      networkAttachments: [{ networkId: "net1", networkName: "front", subnet: "10.240.1.0/24", vni: 4096, address: "10.240.1.5/24" }],
    };
    assert.deepEqual(dockerTask(task, service)["NetworksAttachments"], [{ Network: { ID: "net1", Spec: { Name: "front", Driver: "overlay" } }, Addresses: ["10.240.1.5/24"] }]);
  });

  test("a shoal spec written as Docker JSON reads back to the same spec", () => {
    const spec = parseServiceSpec(readDockerServiceSpec(dockerCreateFull), "spec");
    assert.deepEqual(parseServiceSpec(readDockerServiceSpec(dockerServiceSpec(spec)), "spec"), spec);
  });

  test("durations are whole nanoseconds, rounded to milliseconds", () => {
    assert.equal(nanosToMs(1_500_000, "x"), 2);
    assert.equal(nanosToMs(0, "x"), 0);
    assert.throws(() => nanosToMs(-1, "Delay"), /^InvalidArgumentError: Delay: /u);
    assert.throws(() => nanosToMs("5s", "Delay"), InvalidArgumentError);
  });

  test("filters: both JSON forms, unknown keys and bad values", () => {
    assert.deepEqual([...parseDockerFilters('{"name":{"a":true,"b":false},"id":["x"]}', ["name", "id"])], [["name", ["a"]], ["id", ["x"]]]);
    assert.throws(() => parseDockerFilters("{nope", ["name"]), /not valid JSON/u);
    assert.throws(() => parseDockerFilters('{"name":"web"}', ["name"]), /must be an object of values/u);
    assert.throws(() => parseDockerFilters('{"colour":{"x":true}}', ["name"]), /invalid filter 'colour'/u);
    const filters = taskFiltersFrom(parseDockerFilters('{"desired-state":{"running":true},"_up-to-date":{"true":true},"label":{"a=b":true,"c":true}}', taskFilterKeys));
    assert.deepEqual(filters, { desiredState: ["running"], label: [{ key: "a", value: "b" }, { key: "c" }], upToDate: true });
  });

  test("swarm spec, init and join requests", () => {
    assert.deepEqual(readDockerSwarmSpec({ Name: "default", Labels: null, Orchestration: { TaskHistoryRetentionLimit: 3 }, Raft: { SnapshotInterval: 0, ElectionTick: 0 }, Dispatcher: { HeartbeatPeriod: 2_000_000_000 }, CAConfig: {} }), {
      name: "default",
      taskHistoryRetentionLimit: 3,
      heartbeatPeriodMs: 2_000,
    });
    assert.throws(() => readDockerSwarmSpec({ Raft: { ElectionTick: 20 } }), /Spec\.Raft\.ElectionTick: is not supported/u);
    assert.throws(() => readDockerSwarmSpec({ CAConfig: { ExternalCAs: [{ URL: "https://ca" }] } }), /ExternalCAs: is not supported/u);
    const init = readSwarmInitRequest({ ListenAddr: "0.0.0.0:2377", SubnetSize: 24, DefaultAddrPool: [], DataPathPort: 0, Availability: "" });
    assert.deepEqual(init, { listenAddr: "0.0.0.0:2377", advertiseAddr: "", forceNewCluster: false, spec: {}, availability: "active" });
    assert.throws(() => readSwarmInitRequest({ SubnetSize: 26 }), /SubnetSize/u);
    assert.equal(readSwarmInitRequest({ DefaultAddrPool: ["10.50.0.0/16"] }).spec.defaultAddressPool, "10.50.0.0/16");
    assert.throws(() => readSwarmInitRequest({ DefaultAddrPool: ["10.50.0.0/16", "10.60.0.0/16"] }), /one address pool/u);
    assert.throws(() => readSwarmJoinRequest({ JoinToken: "SWMTKN-1-x", RemoteAddrs: [] }), /RemoteAddrs: name at least one manager/u);
    assert.throws(() => readSwarmJoinRequest({ RemoteAddrs: ["10.0.0.1:2377"] }), /JoinToken: is required/u);
    assert.deepEqual(readSwarmJoinRequest({ RemoteAddrs: ["10.0.0.1:2377"], JoinToken: "t", Availability: "drain" }).availability, "drain");
  });

  test("log frames: timestamp then details, long lines split over frames", () => {
    const context = { nodeId: "n 1", serviceId: "s", taskId: "t" };
    const [header, payload] = encodeLogFrames({ stream: "stderr", line: Buffer.from("x\n"), timestampMs: Date.parse("2026-01-01T00:00:00Z"), context }, { timestamps: true, details: true });
    assert.equal(header?.[0], 2);
    assert.equal(payload?.toString(), "2026-01-01T00:00:00.000Z com.docker.swarm.node.id=n%201,com.docker.swarm.service.id=s,com.docker.swarm.task.id=t x\n");
    const frames = encodeLogFrames({ stream: "stdout", line: Buffer.alloc(logFrameBytesMax + 10, 97), timestampMs: 0, context }, { timestamps: false, details: false });
    assert.equal(frames.length, 4);
    assert.equal(frames[1]?.length, logFrameBytesMax);
    assert.equal(frames[3]?.length, 10);
    assert.equal(parseTail("all"), undefined);
    assert.equal(parseTail("20"), 20);
    assert.throws(() => parseTail("-1"), InvalidArgumentError);
    assert.equal(parseSince("1700000000.5"), 1_700_000_000_500);
    assert.throws(() => parseSince("yesterday"), InvalidArgumentError);
  });
});
