import { createApp } from "./app.ts";
import type { Config } from "./config.ts";
import { startEmbeddedDatabase, type EmbeddedDatabase } from "./db/embedded.ts";
import { migrate } from "./db/migrate.ts";
import { createDatabasePool } from "./db/pool.ts";
import type { Logger } from "./logger.ts";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { sql } from "slonik";
import { MlService } from "../gen/ml/v1/ml_pb.ts";
import { createMetrics } from "./metrics.ts";
import { OVERALL_HEALTH } from "./server/health.ts";
import { createQueryTracingInterceptor, createTracing } from "./tracing.ts";
import { createInterceptorChain } from "./server/interceptors.ts";
import { serveMetrics } from "./server/metrics.ts";
import { listen } from "./server/listen.ts";
import { join } from "node:path";
import { listenForActivations } from "./service/activation-listener.ts";
import { watchDatabase } from "./service/database-watch.ts";
import { createMaintenance } from "./service/maintenance.ts";
import { createPredictionSpill } from "./service/prediction-spill.ts";
import { createTrainPool, defaultTrainThreads } from "./service/train-pool.ts";
import { populationCron, startTrainingQueue, type TrainingQueue } from "./service/training-queue.ts";

/** A started service. */
export interface Service {
  readonly port: number;
  /** Port of /metrics, when METRICS_PORT is set. */
  readonly metricsPort: number | null;
  /** Stops accepting calls, finishes in-flight work and background retrains, closes everything. */
  stop(): Promise<void>;
}

/**
 * Starts the whole service in order: database, migrations, worker pool, and
 * only then the port, so a call is never accepted before the service can answer.
 */
export async function startService(config: Config, log: Logger): Promise<Service> {
  const started = Date.now();
  let embedded: EmbeddedDatabase | null = null;
  let url = config.databaseUrl;
  if (url === null) {
    embedded = await startEmbeddedDatabase(config.dataDir);
    url = embedded.url;
    log.info("embedded database started", { dataDir: config.dataDir });
  }
  const tracing = config.tracing ? createTracing(new OTLPTraceExporter()) : null;
  const db = await createDatabasePool(url, {
    maximumPoolSize: embedded === null ? 10 : 1,
    statementTimeoutMs: config.statementTimeoutMs,
    ...(tracing === null ? {} : { interceptors: [createQueryTracingInterceptor(tracing.tracer)] }),
  });
  const applied = await migrate(db);
  log.info("database migrated", { applied });
  const maintenance = createMaintenance(db, config.maintenance, log);
  maintenance.start();
  const threads = config.trainThreads ?? defaultTrainThreads();
  const trainPool = createTrainPool(threads);
  // On PostgreSQL every training run is a job in the queue, taken by whichever replica has a free thread.
  // The embedded database serves one process over one connection: it keeps training in process.
  const queue: TrainingQueue | null =
    embedded === null && config.trainingQueue.enabled
      ? await startTrainingQueue({ url, db, log, settings: { ...config.trainingQueue, localConcurrency: threads } })
      : null;
  const metrics = config.metricsPort === null ? undefined : createMetrics();
  metrics?.watch({ trainQueue: () => trainPool.queue(), dbPool: () => db.state() });
  const app = createApp({
    db,
    runJob: (job, signal) => trainPool.run(job, signal),
    log,
    settings: config.trainer,
    modelCacheBytes: config.modelCacheBytes,
    activeModelTtlMs: config.activeModelTtlMs,
    ...(metrics === undefined ? {} : { metrics }),
    ...(tracing === null ? {} : { tracer: tracing.tracer }),
    predictionSpill: createPredictionSpill(join(config.spillDir, "predictions.jsonl")),
    predictionAck: config.predictionAck,
    ...(queue === null
      ? {}
      : { trainingRuns: (execute) => queue.runsFor(execute), listTrainingJobs: (userId, modelType, limit) => queue.listJobs(userId, modelType, limit) }),
  });
  await queue?.ready();
  const server = await listen({
    routes: app.routes,
    // One chain for connect-node and the lean unary path alike (src/server/interceptors.ts).
    interceptors: createInterceptorChain({
      log,
      accessLog: config.accessLog,
      ...(metrics === undefined ? {} : { metrics }),
      ...(tracing === null ? {} : { tracer: tracing.tracer }),
      auth: config.auth,
    }),
    limits: config.limits,
    readTimeoutMs: config.readTimeoutMs,
    port: config.port,
    host: config.host,
    ...(config.fastPath ? { fastPath: app.unaryHandlers } : {}),
    ...(config.tls === null
      ? {}
      : { tls: config.tls, onTlsError: (err: unknown) => log.error("reloading the TLS certificate failed; the previous one stays", { error: err }) }),
  });
  const metricsServer = metrics === undefined || config.metricsPort === null ? null : await serveMetrics(metrics, config.metricsPort, config.host);
  // Activations made by other replicas reach this one's caches at once (an embedded database has one replica, and one connection).
  const listener =
    embedded === null
      ? listenForActivations(url, {
          onActivated: (userId, modelType) => app.activeModels.invalidate(userId, modelType),
          onReset: () => app.activeModels.clear(),
          log,
        })
      : null;
  // An embedded database lives in this process: it cannot be unreachable while the process runs.
  const watch = embedded === null ? watchDatabase(() => db.query(sql.unsafe`SELECT 1`), app.health, [OVERALL_HEALTH, MlService.typeName]) : null;
  if (config.auth === null) log.info("authentication is off: any caller may call every RPC", { host: config.host });
  log.info("listening", {
    port: server.port,
    host: config.host,
    tls: config.tls === null ? "off" : config.tls.clientCaFile === undefined ? "on" : "mutual",
    metricsPort: metricsServer?.port ?? null,
    startupMs: Date.now() - started,
  });
  // Through the population scheduler, so a scheduled refit never runs beside one started by new data.
  // With the queue, its cron sends each occurrence once across the fleet, and one replica runs the check.
  if (config.populationRetrainHours > 0) {
    if (queue === null) app.population.scheduleEvery(config.populationRetrainHours * 3_600_000);
    else
      await queue.schedulePopulation(populationCron(config.populationRetrainHours), async () => {
        app.population.tick();
        await app.population.idle();
      });
  }
  // A model may be due already: data that arrived while the service was down, or a first start on existing data.
  app.population.poke();
  let stopping: Promise<void> | null = null;
  return {
    port: server.port,
    metricsPort: metricsServer?.port ?? null,
    stop() {
      stopping ??= (async () => {
        watch?.stop();
        await maintenance.stop();
        await listener?.close();
        app.health.shutdown();
        await server.close();
        await metricsServer?.close();
        // Stop taking jobs and finish the ones running here before the trainer and its pool go.
        await queue?.stop();
        await app.close();
        await trainPool.close();
        await tracing?.shutdown();
        await db.end();
        await embedded?.stop();
      })();
      return stopping;
    },
  };
}
