import { pino, stdSerializers, type DestinationStream, type Logger as PinoLogger } from "pino";

/** Levels a line can have, least to most severe (pino's). */
export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal"] as const;

/** One of LOG_LEVELS. */
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Structured log lines; the composition root picks where they go. */
export interface Logger {
  info(message: string, fields?: Record<string, unknown>): void;
  /** `fields.error`, when an Error, is written with its cause chain. */
  error(message: string, fields?: Record<string, unknown>): void;
  /** A line at a level chosen by configuration (the access log's). */
  at(level: LogLevel, message: string, fields?: Record<string, unknown>): void;
  /** Whether a line at `level` would be written, so callers skip building fields nobody reads. */
  enabled(level: LogLevel): boolean;
  /** A logger whose lines all carry `bindings` (a request id, a job). */
  child(bindings: Record<string, unknown>): Logger;
  /** Resolves once what is buffered has been written (before the process exits). */
  flush(): Promise<void>;
}

/** Where lines go and from which level on. */
export interface JsonLoggerOptions {
  /** Lowest level written; default info. */
  readonly level?: LogLevel;
  /** Receives each line (with its newline); default stderr, buffered up to 4 KiB or 100 ms, so logs never mix with program output. */
  readonly write?: (line: string) => void;
}

function wrap(p: PinoLogger): Logger {
  return {
    info: (message, fields) => (fields === undefined ? p.info(message) : p.info(fields, message)),
    error: (message, fields) => (fields === undefined ? p.error(message) : p.error(fields, message)),
    at: (level, message, fields) => (fields === undefined ? p[level](message) : p[level](fields, message)),
    enabled: (level) => p.isLevelEnabled(level),
    child: (bindings) => wrap(p.child(bindings)),
    flush: () => new Promise<void>((resolve) => p.flush(() => resolve())),
  };
}

/**
 * JSON lines through pino, one per event: `time` (ISO), `level` (a name),
 * `message`, then the fields. An `error` field is serialised with its type,
 * message, stack and nested `cause`.
 */
export function createJsonLogger(options: JsonLoggerOptions = {}): Logger {
  let destination: DestinationStream;
  if (options.write === undefined) {
    // Lines gather up to 4 KiB and go out together at least every 100 ms: one write per line cost the access log more than the line itself.
    const stderr = pino.destination({ dest: 2, sync: false, minLength: 4096 });
    setInterval(() => stderr.flush(), 100).unref();
    destination = stderr;
  } else {
    destination = { write: options.write };
  }
  return wrap(
    pino(
      {
        level: options.level ?? "info",
        messageKey: "message",
        base: null,
        timestamp: pino.stdTimeFunctions.isoTime,
        formatters: { level: (label) => ({ level: label }) },
        serializers: { error: stdSerializers.errWithCause },
      },
      destination,
    ),
  );
}

/** A logger that drops everything, for tests that assert on behaviour, not logs. */
export const silentLogger: Logger = {
  info() {},
  error() {},
  at() {},
  enabled: () => false,
  child: () => silentLogger,
  flush: () => Promise.resolve(),
};
