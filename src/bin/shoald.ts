#!/usr/bin/env -S node --min-semi-space-size=2 --max-semi-space-size=2
import { Command } from "commander";

import { errorMessage, isShoalError } from "../common/errors.js";
import { createLogger } from "../common/logger.js";
import { shoalVersion } from "../common/version.js";
import { daemonSettings, readConfigFile, resolveDaemonConfig, type DaemonSettings } from "../daemon/config.js";
import { startDaemon } from "../daemon/daemon.js";

const program = new Command("shoald")
  .description("The shoal node daemon: container engine, worker agent and (on managers) the manager.")
  .version(shoalVersion)
  .option("--config <file>", "JSON config file whose keys are the settings below (dataDir, socket, ...)", process.env.SHOAL_CONFIG)
  .option(`${daemonSettings.dataDir.flag} <dir>`, `state directory (env SHOAL_DATA_DIR, default ${daemonSettings.dataDir.fallback})`)
  .option(`${daemonSettings.runDir.flag} <dir>`, `runtime state directory, on tmpfs (env SHOAL_RUN_DIR, default ${daemonSettings.runDir.fallback})`)
  .option(`${daemonSettings.socket.flag} <path>`, `REST API unix socket (env SHOAL_SOCKET, default ${daemonSettings.socket.fallback})`)
  .option(`${daemonSettings.listenAddr.flag} <host:port>`, `cluster gRPC address (env SHOAL_LISTEN_ADDR, default ${daemonSettings.listenAddr.fallback})`)
  .option(`${daemonSettings.advertiseAddr.flag} <host:port>`, "address other nodes use to reach this one (env SHOAL_ADVERTISE_ADDR)")
  .option(`${daemonSettings.apiListen.flag} <host:port>`, "also serve the REST API on TCP, unauthenticated (env SHOAL_API_LISTEN)")
  .option(`${daemonSettings.logLevel.flag} <level>`, "fatal|error|warn|info|debug|trace|silent (env SHOAL_LOG_LEVEL, default info)")
  .option(`${daemonSettings.raftSnapshotInterval.flag} <entries>`, "raft entries between a manager's snapshots (env SHOAL_RAFT_SNAPSHOT_INTERVAL, default 10000)")
  .action(run);

function flagSettings(options: Record<string, unknown>): DaemonSettings {
  const settings: DaemonSettings = {};
  for (const key of Object.keys(daemonSettings) as Array<keyof typeof daemonSettings>) {
    const value = options[key];
    if (typeof value === "string") settings[key] = value;
  }
  return settings;
}

async function run(options: Record<string, unknown>): Promise<void> {
  const configFile = typeof options.config === "string" ? options.config : undefined;
  const config = resolveDaemonConfig({
    flags: flagSettings(options),
    env: process.env,
    file: configFile === undefined ? {} : readConfigFile(configFile),
  });
  // A daemon must not pin the directory it was started from: conmon (which inherits the
  // working directory) fails outright when that directory is later removed.
  process.chdir("/");
  const logger = createLogger({ level: config.logLevel });
  // The handlers go in before the start begins: until a process installs one, SIGTERM kills
  // it outright, so a supervisor that stops the daemon just as it comes up would leave its
  // socket, lock and half-set-up engine behind. A signal during the start waits for it.
  let signals = 0;
  const shutdown = (signal: NodeJS.Signals): void => {
    signals += 1;
    if (signals > 1) {
      logger.warn({ signal }, "second signal: exiting without a clean shutdown");
      process.exit(1);
    }
    logger.info({ signal }, "shutting down");
    starting.then(
      (daemon) =>
        daemon.close().then(
          () => {
            logger.flush();
            process.exitCode = 0;
          },
          (error: unknown) => {
            logger.error({ err: error }, "shutdown failed");
            process.exitCode = 1;
          },
        ),
      // A start that fails is reported where it is awaited, below.
      () => undefined,
    );
  };
  process.on("SIGTERM", shutdown);
  process.on("SIGINT", shutdown);
  logger.info({ pid: process.pid, version: shoalVersion }, "shoald starting");
  const starting = startDaemon(config, logger);
  await starting;
}

program.parseAsync(process.argv).catch((error: unknown) => {
  const prefix = isShoalError(error) ? "shoald" : "shoald: unexpected error";
  process.stderr.write(`${prefix}: ${errorMessage(error)}\n`);
  process.exit(1);
});
