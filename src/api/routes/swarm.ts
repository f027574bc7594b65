import type { FastifyInstance } from "fastify";

import { NotImplementedError } from "../../common/errors.js";
import { dockerSwarm, readDockerSwarmSpec, readSwarmInitRequest, readSwarmJoinRequest, requireManager } from "../docker-swarm/index.js";
import { queryBoolean } from "../query.js";
import type { RouteRegistrar } from "../server.js";
import { versionParam, withDockerNames, type SwarmRouteOptions } from "./services.js";

const autolockMessage = "autolock is not supported by shoal yet: manager keys are not encrypted, so there is no unlock key";

/** `/swarm...`: inspect, init, join, leave, update (version, token rotation); unlock answers 501. */
export function swarmRoutes(options: SwarmRouteOptions): RouteRegistrar {
  const { control } = options;
  return (app: FastifyInstance) => {
    app.get("/swarm", () => {
      const api = requireManager(control);
      const cluster = api.getCluster();
      return dockerSwarm({ ...cluster, joinTokens: control.joinTokens() });
    });
    app.post("/swarm/init", async (request, reply) => {
      const nodeId = await control.swarmInit(readSwarmInitRequest(request.body));
      // Docker answers with the node id as a JSON string, which its client decodes.
      return reply.code(200).type("application/json").send(JSON.stringify(nodeId));
    });
    app.post("/swarm/join", async (request, reply) => {
      await control.swarmJoin(readSwarmJoinRequest(request.body));
      return reply.code(200).send();
    });
    app.post("/swarm/leave", async (request, reply) => {
      await control.swarmLeave(queryBoolean(request, "force"));
      return reply.code(200).send();
    });
    app.post("/swarm/update", async (request, reply) => {
      const api = requireManager(control);
      const version = versionParam(request);
      if (queryBoolean(request, "rotateManagerUnlockKey")) throw new NotImplementedError(autolockMessage);
      const spec = readDockerSwarmSpec(request.body);
      await withDockerNames(() => api.updateCluster(version, spec));
      if (queryBoolean(request, "rotateWorkerToken")) await control.rotateJoinToken("worker");
      if (queryBoolean(request, "rotateManagerToken")) await control.rotateJoinToken("manager");
      return reply.code(200).send();
    });
    app.get("/swarm/unlockkey", () => {
      requireManager(control);
      throw new NotImplementedError(autolockMessage);
    });
    app.post("/swarm/unlock", () => {
      throw new NotImplementedError(autolockMessage);
    });
  };
}
