import type { FastifyInstance } from "fastify";

import { dockerApiVersion, dockerMinApiVersion } from "../../common/version.js";
import type { RouteRegistrar } from "../server.js";
import type { SystemInfo, SystemInfoSource } from "../system-info.js";

// Go's names for Node's architectures: Docker reports GOARCH in /version and uname -m in /info.
const goArch: Record<string, string> = { x64: "amd64", arm64: "arm64", arm: "arm", ia32: "386", s390x: "s390x", ppc64: "ppc64le" };
const unameMachine: Record<string, string> = { x64: "x86_64", arm64: "aarch64", arm: "armv7l", ia32: "i686", s390x: "s390x", ppc64: "ppc64le" };

export function dockerVersion(info: SystemInfo): Record<string, unknown> {
  const arch = goArch[info.arch] ?? info.arch;
  return {
    Platform: { Name: "shoal" },
    Components: [
      {
        Name: "Engine",
        Version: info.serverVersion,
        Details: {
          ApiVersion: dockerApiVersion,
          MinAPIVersion: dockerMinApiVersion,
          Os: "linux",
          Arch: arch,
          KernelVersion: info.kernelVersion,
          NodeVersion: process.version,
        },
      },
      ...(info.runtime === null ? [] : [{ Name: info.runtime.name, Version: info.runtime.version, Details: {} }]),
    ],
    Version: info.serverVersion,
    ApiVersion: dockerApiVersion,
    MinAPIVersion: dockerMinApiVersion,
    GitCommit: "",
    GoVersion: `node ${process.version}`,
    Os: "linux",
    Arch: arch,
    KernelVersion: info.kernelVersion,
    BuildTime: "",
  };
}

export function dockerInfo(info: SystemInfo): Record<string, unknown> {
  const { running, paused, stopped } = info.containers;
  const runtimes = info.runtime === null ? {} : { [info.runtime.name]: { path: info.runtime.path } };
  return {
    ID: info.nodeId,
    Containers: running + paused + stopped,
    ContainersRunning: running,
    ContainersPaused: paused,
    ContainersStopped: stopped,
    Images: info.images,
    Driver: info.storageDriver,
    DriverStatus: [["Backing Filesystem", "overlayfs layers"]],
    Plugins: { Volume: ["local"], Network: ["bridge", "host", "none"], Authorization: null, Log: ["k8s-file"] },
    MemoryLimit: true,
    SwapLimit: false,
    CpuCfsPeriod: true,
    CpuCfsQuota: true,
    CPUShares: true,
    CPUSet: true,
    PidsLimit: true,
    OomKillDisable: false,
    IPv4Forwarding: true,
    Debug: false,
    NFd: 0,
    NGoroutines: 0,
    SystemTime: new Date().toISOString(),
    LoggingDriver: "k8s-file",
    CgroupDriver: info.cgroupDriver,
    CgroupVersion: info.cgroupVersion,
    NEventsListener: 0,
    KernelVersion: info.kernelVersion,
    OperatingSystem: info.operatingSystem,
    OSVersion: info.osVersion,
    OSType: "linux",
    Architecture: unameMachine[info.arch] ?? info.arch,
    IndexServerAddress: "https://index.docker.io/v1/",
    RegistryConfig: { IndexConfigs: {}, InsecureRegistryCIDRs: ["127.0.0.0/8"], Mirrors: [] },
    NCPU: info.ncpu,
    MemTotal: info.memTotalBytes,
    GenericResources: null,
    DockerRootDir: info.dataDir,
    HttpProxy: "",
    HttpsProxy: "",
    NoProxy: "",
    Name: info.hostname,
    Labels: info.labels,
    ExperimentalBuild: false,
    ServerVersion: info.serverVersion,
    Runtimes: runtimes,
    DefaultRuntime: info.runtime?.name ?? "",
    Swarm: {
      NodeID: info.swarm.state === "inactive" ? "" : info.nodeId,
      NodeAddr: info.swarm.nodeAddr,
      LocalNodeState: info.swarm.state,
      ControlAvailable: info.swarm.controlAvailable,
      Error: info.swarm.error,
      RemoteManagers: null,
      // Docker reports the cluster object only where the control API is.
      ...(info.swarm.controlAvailable ? { Cluster: { ID: info.swarm.clusterId } } : {}),
    },
    LiveRestoreEnabled: true,
    Isolation: "",
    InitBinary: "",
    ContainerdCommit: { ID: "", Expected: "" },
    RuncCommit: { ID: info.runtime?.version ?? "", Expected: "" },
    InitCommit: { ID: "", Expected: "" },
    SecurityOptions: ["name=seccomp,profile=builtin"],
    Warnings: info.warnings,
  };
}

function pingHeaders(info: SystemInfo): Record<string, string> {
  return {
    "api-version": dockerApiVersion,
    ostype: "linux",
    "docker-experimental": "false",
    swarm: info.swarm.state === "active" ? (info.swarm.controlAvailable ? "active/manager" : "active/worker") : "inactive",
    "cache-control": "no-cache, no-store, must-revalidate",
    pragma: "no-cache",
  };
}

/** `/_ping`, `/version` and `/info`. */
export function systemRoutes(source: SystemInfoSource): RouteRegistrar {
  return (app: FastifyInstance) => {
    app.route({
      method: ["GET", "HEAD"],
      url: "/_ping",
      exposeHeadRoute: false,
      handler: async (request, reply) => {
        const info = await source.info();
        void reply.headers(pingHeaders(info)).type("text/plain; charset=utf-8");
        return request.method === "HEAD" ? "" : "OK";
      },
    });
    app.get("/version", async () => dockerVersion(await source.info()));
    app.get("/info", async () => dockerInfo(await source.info()));
  };
}
