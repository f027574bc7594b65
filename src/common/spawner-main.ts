// The command spawner process (see spawner.ts): runs each request with spawnCommand and
// replies over the IPC channel. It ends when its parent disconnects and the last command
// it runs is done.
import { spawnCommand, spawnDetached } from "./command.js";
import { CancelledError, errorMessage } from "./errors.js";
import { parseSpawnerRequest, type SpawnerReply, type SpawnerRunRequest, type SpawnerStartRequest } from "./spawner.js";

const running = new Map<number, AbortController>();

function reply(message: SpawnerReply): void {
  if (process.connected) process.send?.(message);
}

process.on("message", (message: unknown) => {
  let request;
  try {
    request = parseSpawnerRequest(message);
  } catch (error) {
    process.stderr.write(`shoal command spawner: dropping an unreadable request: ${errorMessage(error)}\n`);
    return;
  }
  if (request.kind === "cancel") {
    running.get(request.id)?.abort();
    return;
  }
  const controller = new AbortController();
  running.set(request.id, controller);
  const answered = request.kind === "start" ? start(request, controller.signal) : run(request, controller.signal);
  answered.then(reply, (error: unknown) => {
    // The parent gave up on a cancelled command already.
    if (!(error instanceof CancelledError)) reply({ id: request.id, error: errorMessage(error) });
  }).finally(() => running.delete(request.id));
});

async function start(request: SpawnerStartRequest, signal: AbortSignal): Promise<SpawnerReply> {
  const { id, file, args, env, cwd } = request;
  return { id, ready: await spawnDetached(file, args, { signal, ...(env === undefined ? {} : { env }), ...(cwd === undefined ? {} : { cwd }) }) };
}

async function run(request: SpawnerRunRequest, signal: AbortSignal): Promise<SpawnerReply> {
  const { id, file, args, input, env, timeoutMs, resolveOnSuccessfulExit } = request;
  const result = await spawnCommand(file, args, {
    signal,
    ...(input === undefined ? {} : { input }),
    ...(env === undefined ? {} : { env }),
    ...(timeoutMs === undefined ? {} : { timeoutMs }),
    ...(resolveOnSuccessfulExit === undefined ? {} : { resolveOnSuccessfulExit }),
  });
  return { id, result };
}

// A terminal's Ctrl-C or a service manager's SIGTERM reaches the daemon too: the spawner
// stays to finish what the daemon's shutdown still runs, and ends when the daemon lets go.
// (A handler, not SIG_IGN, so the programs it starts get the default dispositions back.)
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(signal, () => undefined);
