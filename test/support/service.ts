import { createClient, createRouterTransport, type Client } from "@connectrpc/connect";
import { MlService } from "../../gen/ml/v1/ml_pb.ts";
import { createApp, type App, type AppSettings } from "../../src/app.ts";
import { DEFAULT_TRAINER_SETTINGS } from "../../src/config.ts";
import { silentLogger } from "../../src/logger.ts";
import type { Tracer } from "@opentelemetry/api";
import type { Metrics } from "../../src/metrics.ts";
import { createQueryTracingInterceptor } from "../../src/tracing.ts";
import { createInterceptorChain } from "../../src/server/interceptors.ts";
import { createTrainPool, type TrainPool } from "../../src/service/train-pool.ts";
import { seededRandom } from "../../src/ml/evaluation.ts";
import { freshDatabase, type TestDatabase } from "./database.ts";

/** The whole app on a fresh database with a real worker pool, called through a Connect client in memory. */
export interface TestService {
  readonly db: TestDatabase;
  readonly app: App;
  readonly client: Client<typeof MlService>;
  readonly pool: TrainPool;
  close(): Promise<void>;
}

/**
 * Settings that keep tests quick: fewer trees, same rules. The population
 * model does not refit itself unless a test asks (populationAutoTrain), so a
 * test's explicit Train calls see exactly the versions the test made.
 */
export const TEST_SETTINGS: AppSettings = {
  ...DEFAULT_TRAINER_SETTINGS,
  nEstimators: 25,
  populationAutoTrain: false,
  // Likewise the population task ranker: refitted when a test calls app.ranker.refitPopulation().
  ranker: { ...DEFAULT_TRAINER_SETTINGS.ranker, populationEvery: Number.MAX_SAFE_INTEGER },
};

/** Builds a TestService; `clock` fixes "now" for SuggestTasks, `random` its exploration (seeded by default); `metrics` and `tracer` measure it as start.ts would. */
export async function startTestService(
  options: { settings?: Partial<AppSettings>; clock?: () => number; random?: () => number; metrics?: Metrics; tracer?: Tracer } = {},
): Promise<TestService> {
  const db = await freshDatabase(options.tracer === undefined ? {} : { interceptors: [createQueryTracingInterceptor(options.tracer)] });
  const pool = createTrainPool(1);
  const app = createApp({
    db: db.pool,
    runJob: (job, signal) => pool.run(job, signal),
    log: silentLogger,
    settings: { ...TEST_SETTINGS, ...options.settings },
    ...(options.clock === undefined ? {} : { clock: options.clock }),
    ...(options.metrics === undefined ? {} : { metrics: options.metrics }),
    ...(options.tracer === undefined ? {} : { tracer: options.tracer }),
    random: options.random ?? seededRandom(20261129),
  });
  const interceptors = createInterceptorChain({
    log: silentLogger,
    accessLog: { level: "info", sampleRate: 1 },
    ...(options.metrics === undefined ? {} : { metrics: options.metrics }),
    ...(options.tracer === undefined ? {} : { tracer: options.tracer }),
  });
  const transport = createRouterTransport(app.routes, { router: { interceptors } });
  return {
    db,
    app,
    pool,
    client: createClient(MlService, transport),
    async close() {
      await app.close();
      await pool.close();
      await db.close();
    },
  };
}
