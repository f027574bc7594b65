import type { FastifyInstance } from "fastify";

import { dockerNode, nodeFilterKeys, nodeFiltersFrom, parseDockerFilters, readDockerNodeSpec, requireManager } from "../docker-swarm/index.js";
import { queryBoolean, queryString } from "../query.js";
import type { RouteRegistrar } from "../server.js";
import { idParam, versionParam, type SwarmRouteOptions } from "./services.js";

/** `/nodes...`: list (filters), inspect, update (version), remove (force). */
export function nodeRoutes(options: SwarmRouteOptions): RouteRegistrar {
  const { control } = options;
  return (app: FastifyInstance) => {
    app.get("/nodes", (request) => {
      const api = requireManager(control);
      const filters = nodeFiltersFrom(parseDockerFilters(queryString(request, "filters"), nodeFilterKeys));
      return api.listNodes(filters).map((node) => dockerNode(node, control.managerStatus(node.id)));
    });
    app.get("/nodes/:id", (request) => {
      const node = requireManager(control).getNode(idParam(request));
      return dockerNode(node, control.managerStatus(node.id));
    });
    app.post("/nodes/:id/update", async (request, reply) => {
      const api = requireManager(control);
      await api.updateNode(idParam(request), versionParam(request), readDockerNodeSpec(request.body));
      return reply.code(200).send();
    });
    app.delete("/nodes/:id", async (request, reply) => {
      await requireManager(control).removeNode(idParam(request), { force: queryBoolean(request, "force") });
      return reply.code(200).send();
    });
  };
}
