import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { Command } from "commander";

import { readDockerServiceSpec } from "../../../src/api/docker-swarm/index.js";
import { InvalidArgumentError } from "../../../src/common/errors.js";
import { parseServiceSpec } from "../../../src/manager/objects/index.js";
import {
  parseGoDuration,
  parseMountFlag,
  parsePublishFlag,
  parseScaleArguments,
  serviceSpecFromFlags,
  updatedServiceSpec,
  type ServiceCreateOptions,
} from "../../../src/cli/commands/service.js";
import { swarmInitBody } from "../../../src/cli/commands/swarm.js";
import { dockerCreateFull, dockerCreateGlobal, dockerCreateMinimal } from "../../api/swarm/docker-bodies.js";

/** Parses `service create` arguments with the real option definitions, without a daemon. */
async function parseCreate(argv: string[]): Promise<Record<string, unknown>> {
  const { registerServiceCommands } = await import("../../../src/cli/commands/service.js");
  let body: Record<string, unknown> | undefined;
  const program = new Command("shoal").exitOverride().enablePositionalOptions();
  const context = {
    client: () => {
      throw new Error("no daemon in this test");
    },
    out: process.stdout,
    err: process.stderr,
  };
  registerServiceCommands(program, context);
  const create = program.commands.find((command) => command.name() === "service")?.commands.find((command) => command.name() === "create");
  assert.ok(create !== undefined);
  create.action((image: string, args: string[], options: ServiceCreateOptions) => {
    body = serviceSpecFromFlags(image, args, options, {});
  });
  await program.parseAsync(["service", "create", ...argv], { from: "user" });
  assert.ok(body !== undefined, "the create action ran");
  return body;
}

describe("service create flags", () => {
  test("builds what the docker CLI sends for the minimal and global creates", async () => {
    const minimal = await parseCreate(["--replicas", "3", "--name", "web", "busybox:latest", "sleep", "1d"]);
    const expected = structuredClone(dockerCreateMinimal) as Record<string, unknown>;
    // The docker CLI adds Init and DNSConfig, which shoal leaves out: everything else matches.
    const container = (expected["TaskTemplate"] as { ContainerSpec: Record<string, unknown> }).ContainerSpec;
    delete container["Init"];
    delete container["DNSConfig"];
    assert.deepEqual(minimal, expected);
    const global = await parseCreate(["--mode", "global", "--name", "g", "busybox:latest"]);
    assert.deepEqual(readDockerServiceSpec(global), readDockerServiceSpec(dockerCreateGlobal));
  });

  test("every create flag maps to the same spec as the docker CLI's body", async () => {
    const body = await parseCreate([
      "--name", "web2", "-e", "A=1", "--label", "tier=front", "--container-label", "c=1", "--constraint", "node.role==worker",
      "--placement-pref", "spread=node.labels.zone", "--reserve-cpu", "0.5", "--reserve-memory", "64m", "--limit-cpu", "1", "--limit-memory", "128m",
      "--restart-condition", "on-failure", "--restart-delay", "3s", "--restart-max-attempts", "4", "--restart-window", "1m",
      "--publish", "8080:80", "--publish", "mode=host,target=53,published=53,protocol=udp",
      "--mount", "type=volume,source=data,target=/data", "--mount", "type=bind,source=/tmp,target=/host,readonly", "--mount", "type=tmpfs,target=/scratch",
      "--stop-signal", "SIGINT", "--stop-grace-period", "20s", "--update-parallelism", "2", "--update-delay", "10s", "--update-failure-action", "rollback",
      "--update-monitor", "7s", "--update-max-failure-ratio", "0.2", "--update-order", "start-first", "--rollback-parallelism", "3", "--rollback-delay", "1s",
      "--workdir", "/w", "--user", "nobody", "--replicas-max-per-node", "2", "--replicas", "2", "busybox:1.36", "sleep", "1d",
    ]);
    const ours = parseServiceSpec(readDockerServiceSpec(body), "spec");
    const withoutHealthcheck = structuredClone(dockerCreateFull);
    const docker = parseServiceSpec(readDockerServiceSpec(withoutHealthcheck), "spec");
    delete docker.taskTemplate.containerSpec.healthcheck;
    assert.deepEqual(ours, docker);
  });

  test("--network and --endpoint-mode attach the service as docker's CLI does", async () => {
    const body = await parseCreate(["--name", "api", "--network", "front", "--network", "name=back,alias=db,alias=store", "--endpoint-mode", "dnsrr", "busybox"]);
    const spec = parseServiceSpec(readDockerServiceSpec(body), "spec");
    assert.deepEqual(spec.taskTemplate.networks, [
      { target: "front", aliases: [] },
      { target: "back", aliases: ["db", "store"] },
    ]);
    assert.equal(spec.endpointSpec.mode, "dnsrr");
    await assert.rejects(parseCreate(["--network", "name=x,color=red", "busybox"]), /unknown --network field "color"/);
  });

  test("bad flag values name the flag", () => {
    const options: ServiceCreateOptions = { mode: "replicated", env: [], label: [], containerLabel: [], constraint: [], placementPref: [], publish: [], mount: [] };
    assert.throws(() => serviceSpecFromFlags("busybox", [], { ...options, replicas: "-1" }, {}), /--replicas must be a whole number/);
    assert.throws(() => serviceSpecFromFlags("busybox", [], { ...options, replicas: "1.5" }, {}), /--replicas/);
    assert.throws(() => serviceSpecFromFlags("busybox", [], { ...options, mode: "global", replicas: "2" }, {}), /replicated mode/);
    assert.throws(() => serviceSpecFromFlags("busybox", [], { ...options, restartDelay: "soon" }, {}), /--restart-delay/);
    assert.throws(() => serviceSpecFromFlags("busybox", [], { ...options, placementPref: ["binpack"] }, {}), /--placement-pref/);
  });

  test("Go durations, ports, mounts and scale arguments", () => {
    assert.equal(parseGoDuration("1m30s", "--x"), 90e9);
    assert.equal(parseGoDuration("500ms", "--x"), 5e8);
    assert.equal(parseGoDuration("1.5h", "--x"), 5400e9);
    assert.equal(parseGoDuration("0", "--x"), 0);
    assert.throws(() => parseGoDuration("10", "--x"), InvalidArgumentError);
    assert.throws(() => parseGoDuration("10sx", "--x"), InvalidArgumentError);
    assert.deepEqual(parsePublishFlag("53/udp"), { Protocol: "udp", TargetPort: 53, PublishMode: "ingress" });
    assert.throws(() => parsePublishFlag("99999:80"), /published port/);
    assert.throws(() => parsePublishFlag("mode=host,colour=red,target=1"), /unknown --publish field/);
    assert.deepEqual(parseMountFlag("type=bind,src=/a,dst=/b,ro=true"), { Type: "bind", Source: "/a", Target: "/b", ReadOnly: true });
    assert.throws(() => parseMountFlag("type=bind,source=/a"), /needs target/);
    assert.deepEqual(parseScaleArguments(["web=5", "db=0"]), [{ service: "web", replicas: 5 }, { service: "db", replicas: 0 }]);
    assert.throws(() => parseScaleArguments(["web"]), /SERVICE=REPLICAS/);
  });

  test("service update applies image, env, labels, replicas and force to the current spec", () => {
    const current = {
      Name: "web",
      Labels: { tier: "front", old: "x" },
      TaskTemplate: { ContainerSpec: { Image: "busybox:1.36", Env: ["A=1", "B=2"] }, ForceUpdate: 2 },
      Mode: { Replicated: { Replicas: 3 } },
    };
    const updated = updatedServiceSpec(current, { image: "busybox:1.37", replicas: "5", envAdd: ["A=9", "C"], envRm: ["B"], labelAdd: ["new=y"], labelRm: ["old"], force: true }, { C: "from-shell" });
    assert.deepEqual(updated, {
      Name: "web",
      Labels: { tier: "front", new: "y" },
      TaskTemplate: { ContainerSpec: { Image: "busybox:1.37", Env: ["A=9", "C=from-shell"] }, ForceUpdate: 3 },
      Mode: { Replicated: { Replicas: 5 } },
    });
    assert.throws(() => updatedServiceSpec({ ...current, Mode: { Global: {} } }, { replicas: "2", envAdd: [], envRm: [], labelAdd: [], labelRm: [] }, {}), /replicated mode/);
  });

  test("swarm init body", () => {
    assert.deepEqual(swarmInitBody({ availability: "drain", listenAddr: "0.0.0.0:2377", taskHistoryLimit: "3" }), {
      ListenAddr: "0.0.0.0:2377",
      AdvertiseAddr: "",
      ForceNewCluster: false,
      Availability: "drain",
      Spec: { Orchestration: { TaskHistoryRetentionLimit: 3 } },
    });
    assert.throws(() => swarmInitBody({ availability: "active", taskHistoryLimit: "x" }), /--task-history-limit/);
    assert.deepEqual(swarmInitBody({ availability: "active", defaultAddrPool: "10.50.0.0/16" })["DefaultAddrPool"], ["10.50.0.0/16"]);
  });
});
