import { DEFAULT_TRAINER_SETTINGS, type AppSettings } from "./app.ts";
import { LOG_LEVELS, type LogLevel } from "./logger.ts";
import type { AccessLogSettings } from "./server/access-log.ts";
import type { ServerLimits } from "./server/limits.ts";

/** Everything the service reads from its environment. */
export interface Config {
  readonly port: number;
  readonly host: string;
  /** A PostgreSQL URL; null starts the embedded database in dataDir. */
  readonly databaseUrl: string | null;
  readonly dataDir: string;
  readonly trainThreads: number | null;
  readonly statementTimeoutMs: number;
  /** Hours between scheduled retrains of the population model; 0 turns the schedule off. */
  readonly populationRetrainHours: number;
  /** Memory bound of the model cache, in bytes. */
  readonly modelCacheBytes: number;
  /** How long another instance's activation may take to be seen here, in ms. */
  readonly activeModelTtlMs: number;
  /** Serve unary gRPC and Connect calls over HTTP/2 on the lean path (FAST_PATH=0 sends everything through connect-node). */
  readonly fastPath: boolean;
  /** Limits both serving paths apply (connect-node and the lean unary path). */
  readonly limits: ServerLimits;
  /** Lowest level of log line written. */
  readonly logLevel: LogLevel;
  /** The per-call access line: its level and the share of successful calls written. */
  readonly accessLog: AccessLogSettings;
  readonly trainer: AppSettings;
}

/** Connect's own ceilings where we set none: ~4 GiB per response message, no longest deadline. */
const CONNECT_WRITE_MAX_BYTES = 0xffffffff;

function level(env: NodeJS.ProcessEnv, name: string, fallback: LogLevel): LogLevel {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  if (!(LOG_LEVELS as readonly string[]).includes(raw)) throw new RangeError(`${name}=${raw} is not one of ${LOG_LEVELS.join(", ")}`);
  return raw as LogLevel;
}

function fraction(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0 || value > 1) throw new RangeError(`${name}=${raw} is not a number between 0 and 1`);
  return value;
}

function integer(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${name}=${raw} is not an integer between ${min} and ${max}`);
  }
  return value;
}

/** Reads and checks the configuration; a bad value is a RangeError naming the variable. */
export function readConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const threads = env["TRAIN_THREADS"];
  return {
    port: integer(env, "PORT", 50051, 0, 65535),
    host: env["HOST"] || "127.0.0.1",
    databaseUrl: env["DATABASE_URL"] || null,
    dataDir: env["DATA_DIR"] || ".data/pglite",
    trainThreads: threads === undefined || threads === "" ? null : integer(env, "TRAIN_THREADS", 1, 1, 64),
    statementTimeoutMs: integer(env, "STATEMENT_TIMEOUT_MS", 30_000, 100, 3_600_000),
    populationRetrainHours: integer(env, "POPULATION_RETRAIN_HOURS", 24, 0, 24 * 365),
    modelCacheBytes: integer(env, "MODEL_CACHE_MB", 256, 1, 1_000_000) * 1024 * 1024,
    fastPath: integer(env, "FAST_PATH", 1, 0, 1) === 1,
    limits: {
      readMaxBytes: integer(env, "MAX_REQUEST_BYTES", 4 * 1024 * 1024, 1, CONNECT_WRITE_MAX_BYTES),
      writeMaxBytes: CONNECT_WRITE_MAX_BYTES,
      maxTimeoutMs: Number.MAX_SAFE_INTEGER,
    },
    logLevel: level(env, "LOG_LEVEL", "info"),
    accessLog: { level: level(env, "ACCESS_LOG_LEVEL", "info"), sampleRate: fraction(env, "ACCESS_LOG_SAMPLE", 0.01) },
    activeModelTtlMs: integer(env, "ACTIVE_MODEL_TTL_SECONDS", 60, 1, 86_400) * 1000,
    trainer: {
      ...DEFAULT_TRAINER_SETTINGS,
      minSamples: {
        energy_prediction: integer(env, "MIN_TRAINING_SAMPLES", DEFAULT_TRAINER_SETTINGS.minSamples.energy_prediction, 5, 1_000_000),
        task_suggester: integer(env, "MIN_SUGGESTER_SAMPLES", DEFAULT_TRAINER_SETTINGS.minSamples.task_suggester, 5, 1_000_000),
      },
      retrainAfter: integer(env, "RETRAIN_AFTER_SAMPLES", DEFAULT_TRAINER_SETTINGS.retrainAfter, 1, 1_000_000),
      nEstimators: integer(env, "N_ESTIMATORS", DEFAULT_TRAINER_SETTINGS.nEstimators, 1, 2_000),
      cpuShare: integer(env, "TRAIN_CPU_PERCENT", DEFAULT_TRAINER_SETTINGS.cpuShare * 100, 1, 100) / 100,
      populationAutoTrain: integer(env, "POPULATION_AUTO_TRAIN", DEFAULT_TRAINER_SETTINGS.populationAutoTrain ? 1 : 0, 0, 1) === 1,
      populationGrowthFraction:
        integer(env, "POPULATION_GROWTH_PERCENT", Math.round(DEFAULT_TRAINER_SETTINGS.populationGrowthFraction * 100), 0, 100_000) / 100,
      populationMinIntervalMs:
        integer(env, "POPULATION_MIN_INTERVAL_SECONDS", DEFAULT_TRAINER_SETTINGS.populationMinIntervalMs / 1000, 0, 365 * 86_400) * 1000,
    },
  };
}
