import { createApp } from "./app.ts";
import type { Config } from "./config.ts";
import { startEmbeddedDatabase, type EmbeddedDatabase } from "./db/embedded.ts";
import { migrate } from "./db/migrate.ts";
import { createDatabasePool } from "./db/pool.ts";
import type { Logger } from "./logger.ts";
import { createInterceptorChain } from "./server/interceptors.ts";
import { listen } from "./server/listen.ts";
import { createTrainPool } from "./service/train-pool.ts";

/** A started service. */
export interface Service {
  readonly port: number;
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
  const db = await createDatabasePool(url, {
    maximumPoolSize: embedded === null ? 10 : 1,
    statementTimeoutMs: config.statementTimeoutMs,
  });
  const applied = await migrate(db);
  log.info("database migrated", { applied });
  const trainPool = createTrainPool(config.trainThreads ?? undefined);
  const app = createApp({
    db,
    runJob: (job, signal) => trainPool.run(job, signal),
    log,
    settings: config.trainer,
    modelCacheBytes: config.modelCacheBytes,
    activeModelTtlMs: config.activeModelTtlMs,
  });
  const server = await listen({
    routes: app.routes,
    interceptors: createInterceptorChain({ log, accessLog: config.accessLog }),
    limits: config.limits,
    port: config.port,
    host: config.host,
    ...(config.fastPath ? { fastPath: app.unaryHandlers } : {}),
  });
  log.info("listening", { port: server.port, host: config.host, startupMs: Date.now() - started });
  // Through the population scheduler, so a scheduled refit never runs beside one started by new data.
  if (config.populationRetrainHours > 0) app.population.scheduleEvery(config.populationRetrainHours * 3_600_000);
  // A model may be due already: data that arrived while the service was down, or a first start on existing data.
  app.population.poke();
  let stopping: Promise<void> | null = null;
  return {
    port: server.port,
    stop() {
      stopping ??= (async () => {
        app.health.shutdown();
        await server.close();
        await app.close();
        await trainPool.close();
        await db.end();
        await embedded?.stop();
      })();
      return stopping;
    },
  };
}
