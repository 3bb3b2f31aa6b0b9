import type { AppSettings } from "./app.ts";
import { DEFAULT_USER_MODEL_SETTINGS } from "./ml/train-energy.ts";
import { FIT_COST_FACTOR } from "./service/population-schedule.ts";
import { DEFAULT_RANKER_SETTINGS } from "./service/task-ranker.ts";
import type { AuthSettings } from "./server/auth.ts";
import type { TlsSettings } from "./server/tls.ts";
import type { MaintenanceSettings } from "./service/maintenance.ts";
import { LOG_LEVELS, type LogLevel } from "./logger.ts";
import type { AccessLogSettings } from "./server/access-log.ts";
import type { ServerLimits } from "./server/limits.ts";
import { DEFAULT_TRAINING_QUEUE_SETTINGS, type TrainingQueueSettings } from "./service/training-queue.ts";

/** Default training settings: the values every start uses unless the environment (readConfig) says otherwise. */
export const DEFAULT_TRAINER_SETTINGS: AppSettings = {
  minSamples: { energy_prediction: 10, task_suggester: 30 },
  maxSamples: 20_000,
  maxPopulationSamples: 50_000,
  maxPopulationSamplesPerUser: 500,
  minPopulationUsers: 3,
  populationAutoTrain: true,
  populationGrowthFraction: 0.2,
  populationMinIntervalMs: 5_000,
  populationFitCostFactor: FIT_COST_FACTOR,
  userModel: DEFAULT_USER_MODEL_SETTINGS,
  cpuShare: 0.5,
  nEstimators: 100,
  retrainAfter: 20,
  minComparisonSamples: 10,
  maxReblendUsers: 10_000,
  ranker: DEFAULT_RANKER_SETTINGS,
};

/** Everything the service reads from its environment. */
export interface Config {
  readonly port: number;
  readonly host: string;
  /** A PostgreSQL URL; null starts the embedded database in dataDir. */
  readonly databaseUrl: string | null;
  readonly dataDir: string;
  /** Where predictions the database would not take are kept until it does (one directory per replica). */
  readonly spillDir: string;
  /** When Predict and SuggestTasks answer: once their logged row is buffered, or once it is durable (PREDICTION_ACK). */
  readonly predictionAck: "memory" | "durable";
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
  /** Port of the Prometheus /metrics endpoint (0: any free port); null measures nothing (the default on a dev start). */
  readonly metricsPort: number | null;
  /** Export traces over OTLP/HTTP: on when OTEL_EXPORTER_OTLP_ENDPOINT (or ..._TRACES_ENDPOINT) is set; the exporter reads the other OTEL_* variables. */
  readonly tracing: boolean;
  /** How callers' tokens are checked; null runs the service open (allowed on a loopback address, or with ALLOW_UNAUTHENTICATED=1). */
  readonly auth: AuthSettings | null;
  /** Serve over TLS (TLS_CERT_FILE and TLS_KEY_FILE; TLS_CLIENT_CA_FILE for mutual TLS); null serves in the clear. */
  readonly tls: TlsSettings | null;
  /** A request whose body has not fully arrived within this long is cancelled, on every path. */
  readonly readTimeoutMs: number;
  /** Limits both serving paths apply (connect-node and the lean unary path). */
  readonly limits: ServerLimits;
  /** Lowest level of log line written. */
  readonly logLevel: LogLevel;
  /** The per-call access line: its level and the share of successful calls written. */
  readonly accessLog: AccessLogSettings;
  readonly trainer: AppSettings;
  /** Retention of predictions and model blobs, and how often it runs. */
  readonly maintenance: MaintenanceSettings;
  /** Training jobs on PostgreSQL (the job queue); unused on the embedded database, which trains in process. */
  readonly trainingQueue: TrainingQueueSettings;
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

/** Whether a bind address is reachable only from this machine. */
export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

function readAuth(env: NodeJS.ProcessEnv, host: string): AuthSettings | null {
  const file = env["AUTH_JWKS_FILE"] || undefined;
  const url = env["AUTH_JWKS_URL"] || undefined;
  if (file === undefined && url === undefined) {
    if (!isLoopback(host) && env["ALLOW_UNAUTHENTICATED"] !== "1") {
      throw new RangeError(
        `HOST=${host} accepts calls from other machines, and no authentication is configured: ` +
          "set AUTH_JWKS_FILE or AUTH_JWKS_URL (with AUTH_ISSUER and AUTH_AUDIENCE), or ALLOW_UNAUTHENTICATED=1 to run open on purpose",
      );
    }
    return null;
  }
  if (file !== undefined && url !== undefined) throw new RangeError("set AUTH_JWKS_FILE or AUTH_JWKS_URL, not both");
  const issuer = env["AUTH_ISSUER"];
  const audience = env["AUTH_AUDIENCE"];
  if (!issuer || !audience) throw new RangeError("AUTH_ISSUER and AUTH_AUDIENCE are required when a JWKS is configured");
  return {
    jwks: file !== undefined ? { file } : { url: url! },
    issuer,
    audience,
    clockSkewSeconds: integer(env, "AUTH_CLOCK_SKEW_SECONDS", 30, 0, 600),
    reflectionOpen: integer(env, "REFLECTION_OPEN", 0, 0, 1) === 1,
  };
}

function readTlsSettings(env: NodeJS.ProcessEnv): TlsSettings | null {
  const certFile = env["TLS_CERT_FILE"] || undefined;
  const keyFile = env["TLS_KEY_FILE"] || undefined;
  const clientCaFile = env["TLS_CLIENT_CA_FILE"] || undefined;
  if (certFile === undefined && keyFile === undefined) {
    if (clientCaFile !== undefined) throw new RangeError("TLS_CLIENT_CA_FILE needs TLS_CERT_FILE and TLS_KEY_FILE");
    return null;
  }
  if (certFile === undefined || keyFile === undefined) throw new RangeError("set both TLS_CERT_FILE and TLS_KEY_FILE");
  return { certFile, keyFile, ...(clientCaFile === undefined ? {} : { clientCaFile }) };
}

function oneOf<T extends string>(env: NodeJS.ProcessEnv, name: string, allowed: readonly T[], fallback: T): T {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  if (!(allowed as readonly string[]).includes(raw)) throw new RangeError(`${name}=${raw} is not one of ${allowed.join(", ")}`);
  return raw as T;
}

/** Reads and checks the configuration; a bad value is a RangeError naming the variable. */
export function readConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const threads = env["TRAIN_THREADS"];
  const host = env["HOST"] || "127.0.0.1";
  return {
    port: integer(env, "PORT", 50051, 0, 65535),
    host,
    auth: readAuth(env, host),
    tls: readTlsSettings(env),
    readTimeoutMs: integer(env, "REQUEST_READ_TIMEOUT_SECONDS", 30, 1, 3_600) * 1000,
    databaseUrl: env["DATABASE_URL"] || null,
    dataDir: env["DATA_DIR"] || ".data/pglite",
    spillDir: env["PREDICTION_SPILL_DIR"] || ".data/spill",
    predictionAck: oneOf(env, "PREDICTION_ACK", ["memory", "durable"] as const, "memory"),
    maintenance: {
      predictionRetentionDays: integer(env, "PREDICTION_RETENTION_DAYS", 90, 7, 36_500),
      weeksAhead: 2,
      keepVersions: integer(env, "MODEL_VERSIONS_KEPT", 5, 1, 1_000),
      keepActiveDays: integer(env, "MODEL_VERSIONS_KEPT_ACTIVE_DAYS", 30, 0, 36_500),
      // At most 24 days: Node's timers cannot wait longer than 2^31 ms.
      intervalMs: integer(env, "MAINTENANCE_INTERVAL_HOURS", 6, 1, 24 * 24) * 3_600_000,
    },
    trainThreads: threads === undefined || threads === "" ? null : integer(env, "TRAIN_THREADS", 1, 1, 64),
    statementTimeoutMs: integer(env, "STATEMENT_TIMEOUT_MS", 30_000, 100, 3_600_000),
    populationRetrainHours: integer(env, "POPULATION_RETRAIN_HOURS", 24, 0, 24 * 365),
    modelCacheBytes: integer(env, "MODEL_CACHE_MB", 256, 1, 1_000_000) * 1024 * 1024,
    fastPath: integer(env, "FAST_PATH", 1, 0, 1) === 1,
    tracing: Boolean(env["OTEL_EXPORTER_OTLP_ENDPOINT"] || env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]),
    metricsPort: env["METRICS_PORT"] === undefined || env["METRICS_PORT"] === "" ? null : integer(env, "METRICS_PORT", 0, 0, 65535),
    limits: {
      readMaxBytes: integer(env, "MAX_REQUEST_BYTES", 4 * 1024 * 1024, 1, CONNECT_WRITE_MAX_BYTES),
      writeMaxBytes: CONNECT_WRITE_MAX_BYTES,
      maxTimeoutMs: Number.MAX_SAFE_INTEGER,
    },
    logLevel: level(env, "LOG_LEVEL", "info"),
    accessLog: { level: level(env, "ACCESS_LOG_LEVEL", "info"), sampleRate: fraction(env, "ACCESS_LOG_SAMPLE", 0.01) },
    activeModelTtlMs: integer(env, "ACTIVE_MODEL_TTL_SECONDS", 60, 1, 86_400) * 1000,
    trainingQueue: {
      ...DEFAULT_TRAINING_QUEUE_SETTINGS,
      enabled: integer(env, "TRAINING_QUEUE", 1, 0, 1) === 1,
      retryLimit: integer(env, "TRAIN_JOB_RETRIES", DEFAULT_TRAINING_QUEUE_SETTINGS.retryLimit, 0, 100),
      retryDelaySeconds: integer(env, "TRAIN_JOB_RETRY_DELAY_SECONDS", DEFAULT_TRAINING_QUEUE_SETTINGS.retryDelaySeconds, 0, 3_600),
      heartbeatSeconds: integer(env, "TRAIN_JOB_HEARTBEAT_SECONDS", DEFAULT_TRAINING_QUEUE_SETTINGS.heartbeatSeconds, 10, 3_600),
      expireInSeconds: integer(env, "TRAIN_JOB_TIMEOUT_SECONDS", DEFAULT_TRAINING_QUEUE_SETTINGS.expireInSeconds, 1, 86_400),
      keepSeconds: integer(env, "TRAIN_JOB_HISTORY_DAYS", DEFAULT_TRAINING_QUEUE_SETTINGS.keepSeconds / 86_400, 1, 3_650) * 86_400,
      superviseSeconds: integer(env, "QUEUE_SUPERVISE_SECONDS", DEFAULT_TRAINING_QUEUE_SETTINGS.superviseSeconds, 1, 3_600),
    },
    trainer: {
      ...DEFAULT_TRAINER_SETTINGS,
      minSamples: {
        energy_prediction: integer(env, "MIN_TRAINING_SAMPLES", DEFAULT_TRAINER_SETTINGS.minSamples.energy_prediction, 5, 1_000_000),
        task_suggester: integer(env, "MIN_SUGGESTER_SAMPLES", DEFAULT_TRAINER_SETTINGS.minSamples.task_suggester, 5, 1_000_000),
      },
      retrainAfter: integer(env, "RETRAIN_AFTER_SAMPLES", DEFAULT_TRAINER_SETTINGS.retrainAfter, 1, 1_000_000),
      nEstimators: integer(env, "N_ESTIMATORS", DEFAULT_TRAINER_SETTINGS.nEstimators, 1, 2_000),
      cpuShare: integer(env, "TRAIN_CPU_PERCENT", DEFAULT_TRAINER_SETTINGS.cpuShare * 100, 1, 100) / 100,
      maxReblendUsers: integer(env, "REBLEND_MAX_USERS", DEFAULT_TRAINER_SETTINGS.maxReblendUsers, 0, 10_000_000),
      populationAutoTrain: integer(env, "POPULATION_AUTO_TRAIN", DEFAULT_TRAINER_SETTINGS.populationAutoTrain ? 1 : 0, 0, 1) === 1,
      populationGrowthFraction:
        integer(env, "POPULATION_GROWTH_PERCENT", Math.round(DEFAULT_TRAINER_SETTINGS.populationGrowthFraction * 100), 0, 100_000) / 100,
      ranker: {
        ...DEFAULT_TRAINER_SETTINGS.ranker,
        explorationRate: integer(env, "EXPLORATION_PERCENT", Math.round(DEFAULT_TRAINER_SETTINGS.ranker.explorationRate * 100), 0, 100) / 100,
      },
      populationMinIntervalMs: integer(env, "POPULATION_MIN_INTERVAL_SECONDS", DEFAULT_TRAINER_SETTINGS.populationMinIntervalMs / 1000, 0, 365 * 86_400) * 1000,
    },
  };
}
