import { POPULATION } from "./domain.ts";
import type { ConnectRouter } from "@connectrpc/connect";
import type { DatabasePool } from "slonik";
import { file_ml_v1_ml, MlService } from "../gen/ml/v1/ml_pb.ts";
import { createActivateModelHandler } from "./api/activate-model.ts";
import { createFeedbackHandler } from "./api/feedback.ts";
import { createForecastEnergyHandler } from "./api/forecast-energy.ts";
import { createListActivationsHandler } from "./api/list-activations.ts";
import { createIngestTrainingDataHandler } from "./api/ingest-training-data.ts";
import { createListModelsHandler } from "./api/list-models.ts";
import { createListTrainingJobsHandler, type ListJobs } from "./api/list-training-jobs.ts";
import { createPredictHandler } from "./api/predict.ts";
import { createSuggestTasksHandler } from "./api/suggest-tasks.ts";
import { createTrainHandler } from "./api/train.ts";
import { createUpsertTasksHandler } from "./api/upsert-tasks.ts";
import type { Logger } from "./logger.ts";
import { createHealthService, ServingStatus, type HealthService } from "./server/health.ts";
import { createReflectionService } from "./server/reflection.ts";
import type { FastPathRoutes } from "./server/unary-fast-path.ts";
import type { Tracer } from "@opentelemetry/api";
import type { Metrics } from "./metrics.ts";
import { traceTrainingJobs } from "./tracing.ts";
import { LIVENESS } from "./service/database-watch.ts";
import { createFeedbackRecorder } from "./service/feedback.ts";
import type { PredictionSpill } from "./service/prediction-spill.ts";
import { createActiveModels, type ActiveModels } from "./service/active-models.ts";
import { createKeyedLock } from "./service/keyed-lock.ts";
import { createPredictionLog, type PredictionLog } from "./service/prediction-log.ts";
import { createModelCache } from "./service/model-cache.ts";
import { createPopulationScheduler, type PopulationScheduler, type PopulationScheduleSettings } from "./service/population-schedule.ts";
import { createPredictor } from "./service/predictor.ts";
import { createSuggester } from "./service/suggester.ts";
import { createTaskRanker, type RankerSettings, type TaskRanker } from "./service/task-ranker.ts";
import { createTrainer, type Trainer, type TrainerSettings, type TrainJobRunner } from "./service/trainer.ts";
import type { ExecuteTrain, TrainingRuns } from "./service/training-runs.ts";

/** The trainer's settings and the population model's: how it samples and when it refits itself. */
export type AppSettings = TrainerSettings & PopulationScheduleSettings & { readonly ranker: RankerSettings };

/** Everything the service needs from outside: the database, the worker pool, settings. */
export interface AppDeps {
  readonly db: DatabasePool;
  readonly runJob: TrainJobRunner;
  readonly log: Logger;
  readonly settings: AppSettings;
  readonly clock?: () => number;
  /** Uniform [0, 1) draws (SuggestTasks' exploration); seeded in tests and the eval. */
  readonly random?: () => number;
  /** Memory bound of the model cache, in bytes. */
  readonly modelCacheBytes?: number;
  /** Seconds another instance's activation may take to be seen here. */
  readonly activeModelTtlMs?: number;
  /** Where the parts report what operators scrape (absent: nothing is measured). */
  readonly metrics?: Metrics;
  /** Traces training jobs as children of the call that started them (absent: tracing is off). */
  readonly tracer?: Tracer;
  /** Where predictions the database would not take are kept until it does (absent: given up after retries). */
  readonly predictionSpill?: PredictionSpill;
  /** When Predict answers: once its row is buffered ("memory", default) or once it is durable ("durable": group commit). */
  readonly predictionAck?: "memory" | "durable";
  /** Where training runs happen (the job queue on PostgreSQL); absent: in this process, one run at a time per user and type. */
  readonly trainingRuns?: (execute: ExecuteTrain) => TrainingRuns;
  /** The job queue's history for ListTrainingJobs; absent: no queue, an empty list. */
  readonly listTrainingJobs?: ListJobs;
}

/** The wired service: its routes and the parts shutdown and tests reach for. */
export interface App {
  readonly routes: (router: ConnectRouter) => void;
  /** The same unary handlers, for the lean HTTP/2 path (src/server/unary-fast-path.ts). */
  readonly unaryHandlers: FastPathRoutes;
  readonly trainer: Trainer;
  /** Which version is active per user, cached; start.ts lets other replicas' activations reach it. */
  readonly activeModels: ActiveModels;
  readonly health: HealthService;
  readonly predictionLog: PredictionLog;
  /** Refits the population model when data grows or the schedule asks (start.ts starts its schedule). */
  readonly population: PopulationScheduler;
  /** The learned task rankers (per user, over the population's, over the rules). */
  readonly ranker: TaskRanker;
  /** Flushes the prediction log and waits for background retrains and population fits. */
  close(): Promise<void>;
}

/** Wires handlers to their dependencies; the only place that knows every part. */
export function createApp(deps: AppDeps): App {
  const { db, log } = deps;
  const clock = deps.clock ?? Date.now;
  const cache = createModelCache(db, deps.modelCacheBytes);
  const activeModels = createActiveModels(db, deps.activeModelTtlMs === undefined ? {} : { ttlMs: deps.activeModelTtlMs });
  const metrics = deps.metrics;
  const predictionLog = createPredictionLog(db, log, {
    ...(metrics === undefined ? {} : { onWrite: metrics.observePredictionWrite }),
    ...(deps.predictionSpill === undefined ? {} : { spill: deps.predictionSpill }),
    ...(deps.predictionAck === undefined ? {} : { ack: deps.predictionAck }),
  });
  metrics?.watch({ modelCache: cache, activeModels, predictionLog });
  const traced = deps.tracer === undefined ? deps.runJob : traceTrainingJobs(deps.tracer, deps.runJob);
  const runJob: TrainJobRunner =
    metrics === undefined
      ? traced
      : async (job, signal) => {
          const started = performance.now();
          let outcome: "ok" | "error" = "error";
          try {
            const result = await traced(job, signal);
            outcome = "ok";
            return result;
          } finally {
            metrics.observeTraining(job.kind ?? "forest", outcome, (performance.now() - started) / 1000);
          }
        };
  const onActivated = (model: { user_id: string; model_type: "energy_prediction" | "task_suggester" }) =>
    activeModels.invalidate(model.user_id, model.model_type);
  const trainer = createTrainer({
    db,
    runJob,
    lock: createKeyedLock(),
    cache,
    settings: deps.settings,
    log,
    onBackgroundError: (err, userId, modelType) => log.error("background retrain failed", { userId, modelType, error: err }),
    onActivated,
    ...(deps.trainingRuns === undefined ? {} : { runs: deps.trainingRuns }),
  });
  const population = createPopulationScheduler({ db, trainer, settings: deps.settings, clock, log });
  const predictor = createPredictor({ activeModels, cache, predictionLog });
  const ranker = createTaskRanker({
    db,
    settings: deps.settings.ranker,
    log,
    ...(deps.activeModelTtlMs === undefined ? {} : { cacheTtlMs: deps.activeModelTtlMs }),
  });
  const suggester = createSuggester({
    db,
    ranker,
    predictor,
    predictionLog,
    explorationRate: deps.settings.ranker.explorationRate,
    random: deps.random ?? Math.random,
  });
  const feedback = createFeedbackRecorder({
    db,
    trainer,
    predictionLog,
    ranker,
    onTrainingSamplesAdded: (modelType) => {
      if (modelType === "energy_prediction") population.poke();
    },
    ...(metrics === undefined ? {} : { onEnergyAnswer: metrics.observeFeedback }),
  });
  const health = createHealthService({ initial: { [MlService.typeName]: ServingStatus.SERVING, [LIVENESS]: ServingStatus.SERVING } });
  const reflection = createReflectionService([file_ml_v1_ml]);
  const handlers = {
    ingestTrainingData: createIngestTrainingDataHandler({ db, onSamplesStored: () => population.poke() }),
    train: createTrainHandler({
      trainer,
      // A user's version is trained on samples that may have made them count for the population.
      onTrained: ({ model }) => {
        if (model.user_id !== POPULATION && model.model_type === "energy_prediction") population.poke();
      },
    }),
    predict: createPredictHandler({ predictor }),
    suggestTasks: createSuggestTasksHandler({ suggester, clock }),
    upsertTasks: createUpsertTasksHandler({ db }),
    feedback: createFeedbackHandler({ feedback }),
    listModels: createListModelsHandler({ db }),
    activateModel: createActivateModelHandler({ db, onActivated }),
    listActivations: createListActivationsHandler({ db }),
    forecastEnergy: createForecastEnergyHandler({ predictor }),
    listTrainingJobs: createListTrainingJobsHandler({ listJobs: deps.listTrainingJobs ?? null }),
  };
  return {
    unaryHandlers: { service: MlService, handlers: handlers as unknown as FastPathRoutes["handlers"] },
    trainer,
    activeModels,
    health,
    predictionLog,
    population,
    ranker,
    async close() {
      await predictionLog.close();
      await population.close();
      await ranker.idle();
      trainer.stopBackground();
      await trainer.idle();
    },
    routes(router) {
      router.service(MlService, handlers);
      health.register(router);
      reflection.register(router);
    },
  };
}
