// The command spawner process (see spawner.ts): runs each request with spawnCommand and
// replies over the IPC channel. It ends when its parent disconnects and the last command
// it runs is done.
import { spawnCommand } from "./command.js";
import { CancelledError, errorMessage } from "./errors.js";
import { parseSpawnerRequest, type SpawnerReply } from "./spawner.js";

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
  const { id, file, args, input, env, timeoutMs, resolveOnSuccessfulExit } = request;
  const controller = new AbortController();
  running.set(id, controller);
  spawnCommand(file, args, {
    signal: controller.signal,
    ...(input === undefined ? {} : { input }),
    ...(env === undefined ? {} : { env }),
    ...(timeoutMs === undefined ? {} : { timeoutMs }),
    ...(resolveOnSuccessfulExit === undefined ? {} : { resolveOnSuccessfulExit }),
  }).then(
    (result) => reply({ id, result }),
    (error: unknown) => {
      // The parent gave up on a cancelled command already.
      if (!(error instanceof CancelledError)) reply({ id, error: errorMessage(error) });
    },
  ).finally(() => running.delete(id));
});

// A terminal's Ctrl-C or a service manager's SIGTERM reaches the daemon too: the spawner
// stays to finish what the daemon's shutdown still runs, and ends when the daemon lets go.
// (A handler, not SIG_IGN, so the programs it starts get the default dispositions back.)
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(signal, () => undefined);
