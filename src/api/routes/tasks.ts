import type { FastifyInstance } from "fastify";

import { dockerTask, parseDockerFilters, requireManager, taskFilterKeys, taskFiltersFrom } from "../docker-swarm/index.js";
import { queryString } from "../query.js";
import type { RouteRegistrar } from "../server.js";
import { idParam, replyWithLogs, type SwarmRouteOptions } from "./services.js";

/** `/tasks...`: list (filters, `_up-to-date`), inspect, logs. */
export function taskRoutes(options: SwarmRouteOptions): RouteRegistrar {
  const { control } = options;
  return (app: FastifyInstance) => {
    app.get("/tasks", (request) => {
      const api = requireManager(control);
      const filters = taskFiltersFrom(parseDockerFilters(queryString(request, "filters"), taskFilterKeys));
      const services = new Map(api.listServices().map(({ service }) => [service.id, service]));
      return api.listTasks(filters).map((task) => dockerTask(task, services.get(task.serviceId)));
    });
    app.get("/tasks/:id", (request) => {
      const api = requireManager(control);
      const task = api.getTask(idParam(request));
      const service = api.listServices({ id: [task.serviceId] }).find((item) => item.service.id === task.serviceId)?.service;
      return dockerTask(task, service);
    });
    app.get("/tasks/:id/logs", async (request, reply) => {
      const task = requireManager(control).getTask(idParam(request));
      await replyWithLogs(options.logs, { kind: "task", taskId: task.id }, request, reply);
      return reply;
    });
  };
}
