import { Option, type Command } from "commander";

import type { CliContext } from "../context.js";
import { DaemonResponseError } from "../client.js";
import { collect, parseEnv, parseMemoryBytes, parseNanoCpus, parsePublish, portBindings } from "../flags.js";
import { formatTable, parseOutputFormat, writeJson } from "../output.js";
import { asArray, asRecord, numberField, recordField, stringField, type JsonRecord } from "../parse.js";
import { demuxDockerStream } from "../stream.js";
import { pullImage } from "./image.js";

interface RunOptions {
  detach?: boolean;
  rm?: boolean;
  name?: string;
  env: string[];
  publish: string[];
  volume: string[];
  network?: string;
  memory?: string;
  cpus?: string;
  entrypoint?: string;
  workdir?: string;
  user?: string;
  label: string[];
  hostname?: string;
  pull: string;
}

function addRunOptions(command: Command): Command {
  return command
    .option("-d, --detach", "run in the background and print the container id")
    .option("--rm", "remove the container when it exits")
    .option("--name <name>", "name the container")
    .option("-e, --env <NAME=value>", "set an environment variable (repeatable)", collect, [])
    .option("-p, --publish <[ip:]host:container[/proto]>", "publish a port (repeatable)", collect, [])
    .option("-v, --volume <source:target[:ro]>", "bind mount or named volume (repeatable)", collect, [])
    .option("--network <mode>", "bridge (default), host or none")
    .option("-m, --memory <bytes>", "memory limit (e.g. 256m)")
    .option("--cpus <n>", "CPU limit (e.g. 0.5)")
    .option("--entrypoint <cmd>", "override the image's entrypoint")
    .option("-w, --workdir <dir>", "working directory inside the container")
    .option("-u, --user <user[:group]>", "user to run as")
    .option("-l, --label <key=value>", "set a label (repeatable)", collect, [])
    .option("--hostname <name>", "container host name")
    .addOption(new Option("--pull <policy>", "pull the image: missing, always or never").choices(["missing", "always", "never"]).default("missing"));
}

function createBody(image: string, command: readonly string[], options: RunOptions, env: Readonly<Record<string, string | undefined>>): Record<string, unknown> {
  const { PortBindings, ExposedPorts } = portBindings(options.publish.map(parsePublish));
  const labels = Object.fromEntries(
    options.label.map((label) => {
      const at = label.indexOf("=");
      return at < 0 ? [label, ""] : [label.slice(0, at), label.slice(at + 1)];
    }),
  );
  return {
    Image: image,
    ...(command.length > 0 ? { Cmd: command } : {}),
    ...(options.entrypoint === undefined ? {} : { Entrypoint: [options.entrypoint] }),
    Env: options.env.map((value) => parseEnv(value, env)).filter((value) => value !== undefined),
    ...(options.workdir === undefined ? {} : { WorkingDir: options.workdir }),
    ...(options.user === undefined ? {} : { User: options.user }),
    ...(options.hostname === undefined ? {} : { Hostname: options.hostname }),
    Labels: labels,
    ExposedPorts,
    HostConfig: {
      Binds: options.volume,
      PortBindings,
      NetworkMode: options.network ?? "bridge",
      // --rm with -d is the daemon's job; in the foreground the CLI removes after wait.
      AutoRemove: options.rm === true && options.detach === true,
      ...(options.memory === undefined ? {} : { Memory: parseMemoryBytes(options.memory) }),
      ...(options.cpus === undefined ? {} : { NanoCpus: parseNanoCpus(options.cpus) }),
    },
  };
}

async function createContainer(context: CliContext, image: string, body: Record<string, unknown>, options: RunOptions): Promise<string> {
  const query = { name: options.name };
  const attempt = async (): Promise<string> => stringField(asRecord(await context.client().json("POST", "/containers/create", { query, body }), "create answer"), "Id");
  if (options.pull === "always") await pullImage(context, image, { quiet: false, out: context.err });
  try {
    return await attempt();
  } catch (error) {
    // Like docker run: a missing image is pulled once, then the create is tried again.
    if (!(error instanceof DaemonResponseError) || error.status !== 404 || options.pull === "never" || !/no such image/i.test(error.message)) throw error;
    context.err.write(`Unable to find image '${image}' locally\n`);
    await pullImage(context, image, { quiet: false, out: context.err });
    return attempt();
  }
}

async function runContainer(context: CliContext, image: string, command: readonly string[], options: RunOptions, env: Readonly<Record<string, string | undefined>>): Promise<number> {
  const id = await createContainer(context, image, createBody(image, command, options, env), options);
  const client = context.client();
  if (options.detach === true) {
    await client.json("POST", `/containers/${id}/start`);
    context.out.write(`${id}\n`);
    return 0;
  }
  await client.json("POST", `/containers/${id}/start`);
  // A container that exits before these requests arrive still has its whole log, and wait
  // on a stopped container answers at once with how it ended.
  const logs = await client.stream("GET", `/containers/${id}/logs`, { query: { stdout: 1, stderr: 1, follow: 1 } });
  const streaming = logs.status === 200 ? demuxDockerStream(logs.body, { stdout: context.out, stderr: context.err }) : Promise.resolve();
  const result = asRecord(await client.json("POST", `/containers/${id}/wait`), "wait answer");
  await streaming;
  if (options.rm === true) await client.json("DELETE", `/containers/${id}`, { query: { force: 1 } });
  const failure = stringField(recordField(result, "Error"), "Message");
  if (failure !== "") context.err.write(`${failure}\n`);
  return numberField(result, "StatusCode");
}

function containerRow(container: JsonRecord): string[] {
  const names = asArray(container.Names ?? [], "Names").map((name) => String(name).replace(/^\//, ""));
  const ports = asArray(container.Ports ?? [], "Ports").map((port) => {
    const record = asRecord(port, "port");
    const publicPort = numberField(record, "PublicPort");
    const inner = `${numberField(record, "PrivatePort")}/${stringField(record, "Type")}`;
    return publicPort === 0 ? inner : `${stringField(record, "IP")}:${publicPort}->${inner}`;
  });
  return [stringField(container, "Id").slice(0, 12), stringField(container, "Image"), JSON.stringify(stringField(container, "Command")), stringField(container, "Status"), ports.join(", "), names.join(",")];
}

export function registerContainerCommands(program: Command, context: CliContext, setExitCode: (code: number) => void): void {
  const container = program.command("container").description("Manage containers on this node").enablePositionalOptions();
  addRunOptions(container.command("run").description("Create and start a container; streams its output and exits with its exit code").argument("<image>").argument("[command...]"))
    .passThroughOptions()
    .action(async (image: string, command: string[], options: RunOptions) => {
      setExitCode(await runContainer(context, image, command, options, process.env));
    });
  container
    .command("ls")
    .alias("ps")
    .description("List containers")
    .option("-a, --all", "show stopped containers too")
    .option("-q, --quiet", "only ids")
    .option("-f, --format <format>", "table or json", "table")
    .action(async (options: { all?: boolean; quiet?: boolean; format: string }) => {
      const list = asArray(await context.client().json("GET", "/containers/json", { query: { all: options.all === true ? 1 : undefined } }), "container list").map((item) => asRecord(item, "container"));
      if (parseOutputFormat(options.format) === "json") writeJson(context.out, list);
      else if (options.quiet === true) context.out.write(list.map((item) => `${stringField(item, "Id").slice(0, 12)}\n`).join(""));
      else context.out.write(formatTable(["CONTAINER ID", "IMAGE", "COMMAND", "STATUS", "PORTS", "NAMES"], list.map(containerRow)));
    });
  container
    .command("logs")
    .description("Print a container's output (stdout and stderr kept apart)")
    .argument("<container>")
    .option("-f, --follow", "keep streaming new output")
    .option("-n, --tail <lines>", "only the last N lines", "all")
    .option("--since <time>", "only output since a Unix time or RFC 3339 date")
    .option("-t, --timestamps", "prefix each line with its time")
    .action(async (name: string, options: { follow?: boolean; tail: string; since?: string; timestamps?: boolean }) => {
      const response = await context.client().stream("GET", `/containers/${encodeURIComponent(name)}/logs`, {
        query: { stdout: 1, stderr: 1, follow: options.follow === true ? 1 : undefined, tail: options.tail, since: options.since, timestamps: options.timestamps === true ? 1 : undefined },
      });
      if (response.status !== 200) {
        await context.client().json("GET", `/containers/${encodeURIComponent(name)}/json`);
        throw new Error(`logs of ${name} answered ${response.status}`);
      }
      await demuxDockerStream(response.body, { stdout: context.out, stderr: context.err });
    });
  registerLifecycleCommands(container, context);
  registerExecCommand(container, context, setExitCode);
}

function registerLifecycleCommands(container: Command, context: CliContext): void {
  const eachContainer = async (names: readonly string[], act: (path: string) => Promise<unknown>): Promise<void> => {
    const failures: string[] = [];
    for (const name of names) {
      try {
        await act(`/containers/${encodeURIComponent(name)}`);
        context.out.write(`${name}\n`);
      } catch (error) {
        failures.push(error instanceof Error ? error.message : String(error));
      }
    }
    if (failures.length > 0) throw new Error(failures.join("\n"));
  };
  container.command("start").description("Start stopped containers").argument("<containers...>")
    .action((names: string[]) => eachContainer(names, (path) => context.client().json("POST", `${path}/start`)));
  container.command("stop").description("Stop containers: stop signal, then SIGKILL after the grace period").argument("<containers...>")
    .option("-t, --time <seconds>", "grace period before SIGKILL")
    .action((names: string[], options: { time?: string }) => eachContainer(names, (path) => context.client().json("POST", `${path}/stop`, { query: { t: options.time } })));
  container.command("restart").description("Restart containers").argument("<containers...>")
    .option("-t, --time <seconds>", "grace period before SIGKILL")
    .action((names: string[], options: { time?: string }) => eachContainer(names, (path) => context.client().json("POST", `${path}/restart`, { query: { t: options.time } })));
  container.command("kill").description("Send a signal to containers").argument("<containers...>")
    .option("-s, --signal <signal>", "signal to send", "KILL")
    .action((names: string[], options: { signal: string }) => eachContainer(names, (path) => context.client().json("POST", `${path}/kill`, { query: { signal: options.signal } })));
  container.command("rm").description("Remove containers").argument("<containers...>")
    .option("-f, --force", "kill running containers first")
    .option("-v, --volumes", "remove anonymous volumes too")
    .action((names: string[], options: { force?: boolean; volumes?: boolean }) =>
      eachContainer(names, (path) => context.client().json("DELETE", path, { query: { force: options.force === true ? 1 : undefined, v: options.volumes === true ? 1 : undefined } })));
  container.command("wait").description("Wait for containers to stop and print their exit codes").argument("<containers...>")
    .action(async (names: string[]) => {
      for (const name of names) {
        const result = asRecord(await context.client().json("POST", `/containers/${encodeURIComponent(name)}/wait`), "wait answer");
        context.out.write(`${numberField(result, "StatusCode")}\n`);
      }
    });
  container.command("inspect").description("Show containers' full details as JSON").argument("<containers...>")
    .action(async (names: string[]) => {
      const details = [];
      for (const name of names) details.push(await context.client().json("GET", `/containers/${encodeURIComponent(name)}/json`));
      writeJson(context.out, details);
    });
}

function registerExecCommand(container: Command, context: CliContext, setExitCode: (code: number) => void): void {
  container
    .command("exec")
    .description("Run a command in a running container; exits with the command's exit code")
    .argument("<container>")
    .argument("<command...>")
    .option("-e, --env <NAME=value>", "set an environment variable (repeatable)", collect, [])
    .option("-u, --user <user[:group]>", "user to run as")
    .option("-w, --workdir <dir>", "working directory")
    .option("-d, --detach", "run in the background")
    .passThroughOptions()
    .action(async (name: string, command: string[], options: { env: string[]; user?: string; workdir?: string; detach?: boolean }) => {
      const client = context.client();
      const created = asRecord(
        await client.json("POST", `/containers/${encodeURIComponent(name)}/exec`, {
          body: {
            Cmd: command,
            AttachStdout: options.detach !== true,
            AttachStderr: options.detach !== true,
            Env: options.env.map((value) => parseEnv(value, process.env)).filter((value) => value !== undefined),
            ...(options.user === undefined ? {} : { User: options.user }),
            ...(options.workdir === undefined ? {} : { WorkingDir: options.workdir }),
          },
        }),
        "exec create answer",
      );
      const execId = stringField(created, "Id");
      const started = await client.stream("POST", `/exec/${execId}/start`, { body: { Detach: options.detach === true, Tty: false } });
      if (started.status >= 400) {
        await client.json("GET", `/exec/${execId}/json`);
        throw new Error(`exec start answered ${started.status}`);
      }
      await demuxDockerStream(started.body, { stdout: context.out, stderr: context.err });
      if (options.detach === true) return;
      const inspected = asRecord(await client.json("GET", `/exec/${execId}/json`), "exec inspect");
      setExitCode(numberField(inspected, "ExitCode"));
    });
}
