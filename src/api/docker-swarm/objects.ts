import type { ManagerStatus, ServiceStatus } from "../../manager/controlapi/index.js";
import type { Meta, Node, Service, Task } from "../../manager/objects/index.js";
import { dockerTime } from "./json.js";
import { dockerEndpointSpec, dockerServiceSpec, dockerTaskSpec } from "./service-spec.js";

/** Docker Engine API 1.47 shapes of swarm objects (Service, Node, Task), from shoal's. */

type Output = Record<string, unknown>;

function dockerMeta(meta: Meta): Output {
  return { Version: { Index: meta.version }, CreatedAt: dockerTime(meta.createdAt), UpdatedAt: dockerTime(meta.updatedAt) };
}

export function dockerServiceStatus(status: ServiceStatus): Output {
  return { RunningTasks: status.runningTasks, DesiredTasks: status.desiredTasks, CompletedTasks: status.completedTasks };
}

/**
 * Docker's service Endpoint: the spec, the ports as allocated (a published port asked as 0
 * shows the one the allocator picked) and the VIP on each network.
 */
function dockerServiceEndpoint(service: Service): Output {
  const endpoint = service.spec.endpointSpec;
  const allocated = service.endpoint;
  const ports = endpoint.ports.map((port) => {
    if (port.publishMode !== "ingress" || port.publishedPort !== 0) return port;
    const picked = allocated?.publishedPorts.find((candidate) => candidate.protocol === port.protocol && candidate.targetPort === port.targetPort);
    return picked === undefined ? port : { ...port, publishedPort: picked.publishedPort };
  });
  const virtualIps = allocated?.virtualIps ?? [];
  return {
    Spec: dockerEndpointSpec(endpoint),
    ...(ports.length > 0 ? { Ports: dockerEndpointSpec({ ...endpoint, ports })["Ports"] } : {}),
    ...(virtualIps.length > 0 ? { VirtualIPs: virtualIps.map((vip) => ({ NetworkID: vip.networkId, Addr: vip.address })) } : {}),
  };
}

/** A Service; `status` adds ServiceStatus (the `status=true` list option). */
export function dockerService(service: Service, status?: ServiceStatus): Output {
  const out: Output = {
    ID: service.id,
    ...dockerMeta(service.meta),
    Spec: dockerServiceSpec(service.spec),
    Endpoint: dockerServiceEndpoint(service),
  };
  if (service.previousSpec !== undefined) out["PreviousSpec"] = dockerServiceSpec(service.previousSpec);
  if (service.updateStatus !== undefined) {
    const update = service.updateStatus;
    out["UpdateStatus"] = {
      State: update.state,
      StartedAt: dockerTime(update.startedAt),
      ...(update.completedAt === 0 ? {} : { CompletedAt: dockerTime(update.completedAt) }),
      Message: update.message,
    };
  }
  if (status !== undefined) out["ServiceStatus"] = dockerServiceStatus(status);
  return out;
}

/** A Node; `managerStatus` (from raft membership) adds ManagerStatus. */
export function dockerNode(node: Node, managerStatus: ManagerStatus | undefined): Output {
  const out: Output = {
    ID: node.id,
    ...dockerMeta(node.meta),
    Spec: {
      ...(node.spec.name === "" ? {} : { Name: node.spec.name }),
      Labels: { ...node.spec.labels },
      Role: node.spec.role,
      Availability: node.spec.availability,
    },
    Status: { State: node.status.state, Message: node.status.message, Addr: node.status.addr },
  };
  const description = node.description;
  if (description !== undefined) {
    out["Description"] = {
      Hostname: description.hostname,
      Platform: { Architecture: description.platform.architecture, OS: description.platform.os },
      Resources: { NanoCPUs: description.resources.nanoCPUs, MemoryBytes: description.resources.memoryBytes },
      Engine: { EngineVersion: description.engine.engineVersion, Labels: { ...description.engine.labels }, Plugins: [] },
    };
  }
  if (managerStatus !== undefined) {
    out["ManagerStatus"] = { Leader: managerStatus.leader, Reachability: managerStatus.reachability, Addr: managerStatus.addr };
  }
  return out;
}

/** The scheduler's explanation for a task it cannot place ("no suitable node (...)"). */
const unschedulablePrefix = "no suitable node";

/**
 * Docker's Err of a task. Swarmkit puts the scheduler's explanation of a pending task in Err,
 * where `docker service ps` shows it; shoal's scheduler writes it as the pending task's
 * message, so it is surfaced here.
 */
function dockerTaskError(task: Task): string {
  const status = task.status;
  if (status.err !== "") return status.err;
  return status.state === "pending" && status.message.startsWith(unschedulablePrefix) ? status.message : "";
}

/** A Task; `service` (when still present) adds the service's labels as ServiceAnnotations. */
export function dockerTask(task: Task, service: Service | undefined): Output {
  const status = task.status;
  const container = status.containerStatus;
  const err = dockerTaskError(task);
  return {
    ID: task.id,
    ...dockerMeta(task.meta),
    Labels: {},
    Spec: dockerTaskSpec(task.spec),
    ServiceID: task.serviceId,
    ...(task.slot === 0 ? {} : { Slot: task.slot }),
    ...(task.nodeId === "" ? {} : { NodeID: task.nodeId }),
    Status: {
      Timestamp: dockerTime(status.timestamp),
      State: status.state,
      Message: status.message,
      ...(err === "" ? {} : { Err: err }),
      // Not in Docker's API: the health check verdict of a running task (starting, healthy, unhealthy).
      ...(status.health === undefined ? {} : { Health: status.health }),
      ...(container === undefined ? {} : { ContainerStatus: { ContainerID: container.containerId, PID: container.pid, ExitCode: container.exitCode } }),
      PortStatus: task.endpoint.ports.some((port) => port.publishMode === "host") ? { Ports: dockerEndpointSpec(task.endpoint)["Ports"] } : {},
    },
    DesiredState: task.desiredState,
    ...(task.networkAttachments === undefined || task.networkAttachments.length === 0
      ? {}
      : {
          NetworksAttachments: task.networkAttachments.map((attachment) => ({
            Network: { ID: attachment.networkId, Spec: { Name: attachment.networkName, Driver: "overlay" } },
            Addresses: [attachment.address],
          })),
        }),
    ...(service === undefined ? {} : { ServiceAnnotations: { Name: service.spec.name, Labels: { ...service.spec.labels } } }),
  };
}
