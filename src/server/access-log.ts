import { type Code, ConnectError, type Interceptor, type StreamRequest, type UnaryRequest } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { ModelSource } from "../../gen/ml/v1/ml_pb.ts";
import type { Logger, LogLevel } from "../logger.ts";
import { requestIdKey } from "./request-id.ts";

/** How many calls the access log writes, and at which level. */
export interface AccessLogSettings {
  readonly level: LogLevel;
  /** Share of successful calls written, 0-1; failed calls are always written. */
  readonly sampleRate: number;
}

const SOURCE_NAMES = new Map<number, string>(
  Object.entries(ModelSource)
    .filter((entry): entry is [string, number] => typeof entry[1] === "number" && entry[1] !== ModelSource.UNSPECIFIED)
    .map(([name, value]) => [value, name.toLowerCase()]),
);

function userIdOf(message: unknown): string | undefined {
  const id = (message as { userId?: unknown } | null)?.userId;
  return typeof id === "string" && id !== "" ? id : undefined;
}

function modelSourceOf(message: unknown): string | undefined {
  const source = (message as { modelSource?: unknown } | null)?.modelSource;
  return typeof source === "number" ? SOURCE_NAMES.get(source) : undefined;
}

/**
 * One line per call ("call": method, code, durationMs, userId, modelSource,
 * requestId) at the configured level, for a sample of successful calls and
 * every failed one. Sits inside the request-id interceptor and outside the
 * error interceptor, so it sees the id and the mapped code.
 */
export function createAccessLogInterceptor(log: Logger, settings: AccessLogSettings, random: () => number = Math.random): Interceptor {
  const { level, sampleRate } = settings;
  if (!log.enabled(level)) return (next) => next;
  return (next) => (req) => {
    const started = performance.now();
    return next(req).then(
      (res) => {
        if (sampleRate >= 1 || random() < sampleRate) writeLine(log, level, req, 0, res.message, started);
        return res;
      },
      (err: unknown) => {
        writeLine(log, level, req, ConnectError.from(err).code, undefined, started);
        throw err;
      },
    );
  };
}

function writeLine(log: Logger, level: LogLevel, req: UnaryRequest | StreamRequest, code: Code | 0, message: unknown, started: number): void {
  const userId = userIdOf(req.message);
  const modelSource = modelSourceOf(message);
  log.at(level, "call", {
    requestId: req.contextValues.get(requestIdKey),
    method: `${req.service.typeName}/${req.method.name}`,
    code: code === 0 ? "ok" : codeToString(code),
    durationMs: Math.round((performance.now() - started) * 100) / 100,
    ...(userId === undefined ? {} : { userId }),
    ...(modelSource === undefined ? {} : { modelSource }),
  });
}
