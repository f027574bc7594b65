import type { FastifyInstance } from "fastify";

import type { Service, Task } from "../../manager/objects/index.js";
import { dockerTask, parseDockerFilters, requireManager, taskFilterKeys, taskFiltersFrom } from "../docker-swarm/index.js";
import { queryString } from "../query.js";
import type { RouteRegistrar } from "../server.js";
import { idParam, replyWithLogs, type SwarmRouteOptions } from "./services.js";

/**
 * The JSON of each task as the list shows it, per stored task object: the store replaces
 * its objects on every change and never edits them, so a client polling `/tasks` while a
 * service converges (`docker service ps`, the CLI's progress display) re-encodes only the
 * tasks that changed since its last poll. Entries go with the task objects. Kept as UTF-8
 * bytes: a list answer is then one copy of them, where a string had to be flattened,
 * measured for Content-Length and encoded again on every poll (a tenth of the daemon's CPU
 * while a benchmark polled 200 tasks every 25 ms).
 */
const encodedTasks = new WeakMap<Task, { service: Service | undefined; json: Buffer }>();

function encodeTask(task: Task, service: Service | undefined): Buffer {
  const cached = encodedTasks.get(task);
  if (cached !== undefined && cached.service === service) return cached.json;
  const json = Buffer.from(JSON.stringify(dockerTask(task, service)));
  encodedTasks.set(task, { service, json });
  return json;
}

const listOpen = Buffer.from("[");
const listSeparator = Buffer.from(",");
const listClose = Buffer.from("]");

/** A JSON array of already encoded items. */
function jsonList(items: readonly Buffer[]): Buffer {
  const parts = [listOpen, ...items.flatMap((item, index) => (index === 0 ? [item] : [listSeparator, item])), listClose];
  return Buffer.concat(parts);
}

/** `/tasks...`: list (filters, `_up-to-date`), inspect, logs. */
export function taskRoutes(options: SwarmRouteOptions): RouteRegistrar {
  const { control } = options;
  return (app: FastifyInstance) => {
    app.get("/tasks", (request, reply) => {
      const api = requireManager(control);
      const filters = taskFiltersFrom(parseDockerFilters(queryString(request, "filters"), taskFilterKeys));
      const services = new Map(api.listServices().map(({ service }) => [service.id, service]));
      const tasks = api.listTasks(filters).map((task) => encodeTask(task, services.get(task.serviceId)));
      return reply.type("application/json").send(jsonList(tasks));
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
