import { pino, type Logger, type LevelWithSilent } from "pino";

export type { Logger };

export const logLevels = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export type LogLevel = (typeof logLevels)[number];

export function parseLogLevel(value: string): LogLevel {
  const found = logLevels.find((level) => level === value);
  if (found === undefined) {
    throw new Error(`invalid log level "${value}": use one of ${logLevels.join(", ")}`);
  }
  return found;
}

/**
 * The root logger of a process: JSON lines on stderr, or pino-pretty when stderr is a
 * terminal. Components take `logger.child({ component })` from it.
 */
export function createLogger(options: { level: LogLevel; pretty?: boolean }): Logger {
  const level: LevelWithSilent = options.level;
  const pretty = options.pretty ?? process.stderr.isTTY;
  if (pretty) {
    return pino({
      level,
      transport: { target: "pino-pretty", options: { destination: 2, colorize: true } },
    });
  }
  return pino({ level }, pino.destination({ fd: 2, sync: false }));
}
