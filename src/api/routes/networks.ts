import type { FastifyInstance } from "fastify";

import { InvalidArgumentError } from "../../common/errors.js";
import type { ClusterControl } from "../../manager/controlapi/index.js";
import type { Network } from "../../manager/objects/index.js";
import { dockerFields, dockerTime, parseDockerFilters, requireManager } from "../docker-swarm/index.js";
import { queryString } from "../query.js";
import type { RouteRegistrar } from "../server.js";
import { idParam } from "./services.js";

export const networkFilterKeys = ["name", "id", "driver", "scope"] as const;

/** Docker's NetworkResource for a cluster network (scope "swarm"). */
export function dockerNetwork(network: Network): Record<string, unknown> {
  return {
    Name: network.spec.name,
    Id: network.id,
    Created: dockerTime(network.meta.createdAt),
    Scope: "swarm",
    Driver: network.spec.driver,
    EnableIPv6: false,
    IPAM: { Driver: "default", Options: null, Config: [{ Subnet: network.subnet }] },
    Internal: false,
    Attachable: false,
    Ingress: network.spec.ingress,
    ConfigOnly: false,
    Containers: {},
    Options: { "com.docker.network.driver.overlay.vxlanid_list": String(network.vni) },
    Labels: { ...network.spec.labels },
  };
}

/** POST /networks/create's body as a shoal NetworkSpec; fields shoal does not implement must be unset. */
export function readDockerNetworkCreate(body: unknown): { name: string; driver: string; labels: unknown } {
  const fields = dockerFields(
    body,
    "",
    ["Name", "Driver", "Labels", "CheckDuplicate", "Scope"],
    ["Internal", "Attachable", "Ingress", "IPAM", "EnableIPv6", "Options", "ConfigOnly", "ConfigFrom"],
  );
  const name = fields["Name"];
  if (typeof name !== "string" || name === "") throw new InvalidArgumentError("Name: the network needs a name");
  const driver = fields["Driver"] ?? "overlay";
  if (driver !== "overlay") throw new InvalidArgumentError(`Driver: shoal creates only cluster networks with driver "overlay", got ${JSON.stringify(driver)}`);
  const scope = fields["Scope"];
  if (scope !== undefined && scope !== null && scope !== "" && scope !== "swarm") throw new InvalidArgumentError(`Scope: cluster networks have scope "swarm"`);
  return { name, driver, labels: fields["Labels"] ?? {} };
}

function matches(network: Network, filters: ReadonlyMap<string, readonly string[]>): boolean {
  const check = (key: string, test: (value: string) => boolean): boolean => {
    const values = filters.get(key);
    return values === undefined || values.some(test);
  };
  return (
    check("name", (value) => network.spec.name.includes(value)) &&
    check("id", (value) => network.id.startsWith(value)) &&
    check("driver", (value) => value === network.spec.driver) &&
    check("scope", (value) => value === "swarm")
  );
}

/** `/networks...`: Docker's list, inspect, create and remove for cluster networks. */
export function networkRoutes(options: { control: ClusterControl }): RouteRegistrar {
  const { control } = options;
  return (app: FastifyInstance) => {
    app.get("/networks", (req) => {
      const filters = parseDockerFilters(queryString(req, "filters"), networkFilterKeys);
      // A node outside a swarm, or a worker, has no cluster networks to show.
      if (!control.isManager()) return [];
      return requireManager(control).listNetworks().filter((network) => matches(network, filters)).map(dockerNetwork);
    });
    app.get("/networks/:id", (req) => dockerNetwork(requireManager(control).getNetwork(idParam(req))));
    app.post("/networks/create", async (req, reply) => {
      const api = requireManager(control);
      const network = await api.createNetwork(readDockerNetworkCreate(req.body));
      return reply.code(201).send({ Id: network.id, Warning: "" });
    });
    app.delete("/networks/:id", async (req, reply) => {
      await requireManager(control).removeNetwork(idParam(req));
      return reply.code(204).send();
    });
  };
}
