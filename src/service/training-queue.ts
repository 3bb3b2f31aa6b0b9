import { PgBoss, type Job, type JobWithMetadata } from "pg-boss";
import type { DatabasePool } from "slonik";
import { modelById } from "../db/models.ts";
import type { ModelTypeName } from "../domain.ts";
import { InvalidInput, ModelLoadFailed, NotEnoughTrainingData, NotFound, PreconditionFailed, TrainingJobFailed } from "../errors.ts";
import type { Logger } from "../logger.ts";
import type { TrainOutcome } from "./trainer.ts";
import { runKey, type ExecuteTrain, type TrainingRuns, type TrainRequest } from "./training-runs.ts";

/*
 * Why pg-boss and not graphile-worker (both keep jobs in PostgreSQL):
 * - a job's result stays in its row (`output`) with its state, attempts and
 *   times, so the Train RPC can wait for the job it joined and ListTrainingJobs
 *   can show the history; graphile-worker deletes a job when it succeeds and
 *   stores no result.
 * - the 'stately' policy is a unique index over (queue, state, singleton key):
 *   at most one job per user and model type queued and one running, across
 *   every replica, enforced by the database. graphile-worker's job keys dedupe
 *   queued jobs and named queues serialise runs, but two mechanisms, and a
 *   re-send replaces the queued job's payload.
 * - a dead worker is found by its missed heartbeat (heartbeatSeconds, here
 *   30 s by default) and its job retried with backoff; graphile-worker frees
 *   the locks of a crashed worker after 4 hours.
 * - cron (`schedule`) sends each occurrence once across the fleet.
 * Measured enqueue-to-pickup latency: see README (Training jobs).
 */

/** The queue every training run goes through on PostgreSQL. */
export const TRAINING_QUEUE = "training";
/** The queue the population schedule's cron sends to; whichever replica takes the job runs the population policy. */
export const POPULATION_SCHEDULE_QUEUE = "population-schedule";

/** How training jobs are retried and watched; read from config (TRAIN_JOB_*). */
export interface TrainingQueueSettings {
  /** Whether a PostgreSQL deployment trains through the queue (TRAINING_QUEUE=0: in process, as on the embedded database). */
  readonly enabled: boolean;
  /** Retries after a failed attempt (a worker error, a lost database, a dead replica); domain errors are never retried. */
  readonly retryLimit: number;
  /** Seconds before the first retry; doubled (with jitter) for each next one. */
  readonly retryDelaySeconds: number;
  /** A replica that has not confirmed its running job for this long is taken for dead, and the job retried elsewhere (at least 10). */
  readonly heartbeatSeconds: number;
  /** Longest a training attempt may run. */
  readonly expireInSeconds: number;
  /** How long finished jobs stay queryable (ListTrainingJobs). */
  readonly keepSeconds: number;
  /** How often the supervisor looks for dead workers' jobs (seconds). */
  readonly superviseSeconds: number;
  /** Jobs this replica runs at once: its training threads, so it takes a job only when a worker is free. */
  readonly localConcurrency: number;
  /** How often a Train call looks at the state of the job it waits for (ms). */
  readonly waitPollMs: number;
}

/** Defaults (config.ts overrides from the environment). */
export const DEFAULT_TRAINING_QUEUE_SETTINGS: TrainingQueueSettings = {
  enabled: true,
  retryLimit: 3,
  retryDelaySeconds: 2,
  heartbeatSeconds: 30,
  expireInSeconds: 3_600,
  keepSeconds: 7 * 86_400,
  superviseSeconds: 10,
  localConcurrency: 1,
  waitPollMs: 100,
};

/** A domain error carried in a job's output. */
interface StoredError {
  readonly name: string;
  readonly message: string;
  readonly have?: number;
  readonly need?: number;
  readonly modelId?: string;
}

/** What a finished job stores as its output: the version, a skip, or a domain error that retrying would not cure. */
interface JobOutput {
  readonly modelId?: string;
  readonly version?: string;
  readonly activated?: boolean;
  readonly reason?: string;
  readonly skipped?: boolean;
  readonly error?: StoredError;
}

/** One job of the history, as ListTrainingJobs answers it. */
export interface TrainingJob {
  readonly id: string;
  readonly userId: string;
  readonly modelType: ModelTypeName;
  readonly trigger: string;
  /** created, retry, active, completed, cancelled or failed. */
  readonly state: string;
  /** Attempts after the first. */
  readonly retries: number;
  readonly createdAt: Date;
  readonly startedAt: Date | null;
  readonly finishedAt: Date | null;
  /** The version it stored, when it completed with one. */
  readonly version: string | null;
  readonly activated: boolean;
  /** The decision's reason, why it was skipped, or what went wrong. */
  readonly outcome: string;
}

/** The started queue of one replica. */
export interface TrainingQueue {
  /** The runs of this replica's trainer: sends jobs, waits for them, and works on them with `execute`. */
  runsFor(execute: ExecuteTrain): TrainingRuns;
  /** Resolves when this replica's workers are registered (after runsFor). */
  ready(): Promise<void>;
  /** Runs `tick` once across the fleet on the cron (UTC); every replica may call it, the schedule is stored once. */
  schedulePopulation(cron: string, tick: () => Promise<void>): Promise<void>;
  /** The user's (or the population's) jobs of one model type, newest first. */
  listJobs(userId: string, modelType: ModelTypeName, limit: number): Promise<readonly TrainingJob[]>;
  /** Stops taking jobs, waits for this replica's running ones, closes the queue's connections. */
  stop(): Promise<void>;
}

/** Dependencies of the queue. */
export interface TrainingQueueDeps {
  readonly url: string;
  readonly db: DatabasePool;
  readonly log: Logger;
  readonly settings: TrainingQueueSettings;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Domain errors say something about the data, not the attempt: the job completes with them, and the caller gets them back. */
function domainError(err: unknown): StoredError | null {
  if (err instanceof NotEnoughTrainingData) return { name: err.name, message: err.message, have: err.have, need: err.need };
  if (err instanceof ModelLoadFailed) return { name: err.name, message: err.message, modelId: err.modelId };
  if (err instanceof NotFound || err instanceof PreconditionFailed || err instanceof InvalidInput) return { name: err.name, message: err.message };
  return null;
}

function rethrow(error: StoredError, request: TrainRequest): never {
  switch (error.name) {
    case "NotEnoughTrainingData":
      throw new NotEnoughTrainingData(request.userId, request.modelType, error.have ?? 0, error.need ?? 0, error.message);
    case "ModelLoadFailed":
      throw Object.assign(new ModelLoadFailed(error.modelId ?? "", ""), { message: error.message });
    case "NotFound":
      throw new NotFound(error.message);
    default:
      throw new PreconditionFailed(error.message);
  }
}

function aborted(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new DOMException("the wait was aborted", "AbortError");
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(aborted(signal));
    const onAbort = () => {
      clearTimeout(timer);
      reject(aborted(signal!));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

const FINISHED = new Set(["completed", "failed", "cancelled"]);

/**
 * Starts pg-boss on the service's PostgreSQL (its own schema `pgboss`, its
 * own small pool) and creates the queues. The training queue is 'stately':
 * per singleton key (`<model type>:<user>`) at most one job waits and one
 * runs, whichever replica sent them.
 */
export async function startTrainingQueue(deps: TrainingQueueDeps): Promise<TrainingQueue> {
  const { db, log, settings } = deps;
  const boss = new PgBoss({
    connectionString: deps.url,
    max: 3,
    application_name: "ml-energy-service:queue",
    superviseIntervalSeconds: settings.superviseSeconds,
    monitorIntervalSeconds: settings.superviseSeconds,
    useListenNotify: true,
    registerInstance: false,
  });
  boss.on("error", (err: unknown) => log.error("job queue error", { error: message(err) }));
  await boss.start();
  const queueSettings = {
    retryLimit: settings.retryLimit,
    retryDelay: settings.retryDelaySeconds,
    retryBackoff: true,
    heartbeatSeconds: settings.heartbeatSeconds,
    expireInSeconds: settings.expireInSeconds,
    deleteAfterSeconds: settings.keepSeconds,
  };
  await boss.createQueue(TRAINING_QUEUE, { policy: "stately", ...queueSettings, notify: true });
  // createQueue leaves an existing queue as it was: settings changed since apply on start.
  await boss.updateQueue(TRAINING_QUEUE, queueSettings);
  await boss.createQueue(POPULATION_SCHEDULE_QUEUE, { policy: "exclusive", retryLimit: 1, expireInSeconds: settings.expireInSeconds });
  const registered: Promise<unknown>[] = [];
  const running = new Set<Promise<unknown>>();
  let workerId: string | null = null;
  // Stopping releases this replica's waiters (their jobs stay in the queue for the other replicas).
  const stopping = new AbortController();

  /** One poller per job, however many callers of this replica wait for it. */
  const watched = new Map<string, Promise<JobWithMetadata<TrainRequest>>>();
  /** Wakes a job's poller early: this replica's worker has just finished the job. */
  const nudges = new Map<string, () => void>();
  function watch(id: string): Promise<JobWithMetadata<TrainRequest>> {
    let found = watched.get(id);
    if (found === undefined) {
      found = (async () => {
        // Short polls at first (most fits take well under a second), then every waitPollMs.
        let delay = Math.min(10, settings.waitPollMs);
        for (;;) {
          const [job] = await boss.findJobs<TrainRequest>(TRAINING_QUEUE, { id });
          if (job === undefined) throw new TrainingJobFailed(`training job ${id} is gone from the queue`);
          if (FINISHED.has(job.state)) return job;
          const wake = new AbortController();
          nudges.set(id, () => wake.abort());
          await sleep(delay, AbortSignal.any([wake.signal, stopping.signal])).catch((err: unknown) => {
            if (stopping.signal.aborted) throw err;
          });
          delay = Math.min(delay * 1.5, settings.waitPollMs);
        }
      })();
      const done = found;
      void done
        .catch(() => undefined)
        .finally(() => {
          watched.delete(id);
          nudges.delete(id);
        });
      watched.set(id, done);
    }
    return found;
  }

  async function waitFor(id: string, request: TrainRequest, callerSignal?: AbortSignal): Promise<TrainOutcome | null> {
    // The job is shared: a caller that gives up stops waiting, the job runs on for the others.
    const signal = callerSignal === undefined ? stopping.signal : AbortSignal.any([callerSignal, stopping.signal]);
    const job = await new Promise<JobWithMetadata<TrainRequest>>((resolve, reject) => {
      if (signal.aborted) return reject(aborted(signal));
      const onAbort = () => reject(aborted(signal));
      signal.addEventListener("abort", onAbort, { once: true });
      watch(id)
        .then(resolve, reject)
        .finally(() => signal.removeEventListener("abort", onAbort));
    });
    const output = (job.output ?? {}) as JobOutput;
    if (job.state !== "completed") {
      throw new TrainingJobFailed(
        `training job ${id} ${job.state} after ${job.retryCount + 1} attempt(s): ${(output as { message?: string }).message ?? "no reason given"}`,
      );
    }
    if (output.error !== undefined) rethrow(output.error, request);
    if (output.skipped === true || output.modelId === undefined) return null;
    const model = await modelById(db, output.modelId);
    if (model === null) throw new NotFound(`model ${output.modelId} (stored by training job ${id}) no longer exists`);
    return { model, activated: output.activated === true, reason: output.reason ?? "" };
  }

  async function send(request: TrainRequest): Promise<string | null> {
    const id = await boss.send(TRAINING_QUEUE, request, { singletonKey: runKey(request.userId, request.modelType) });
    // This replica's worker looks at once, if it has a free thread; the others hear the queue's NOTIFY.
    if (id !== null && workerId !== null) boss.notifyWorker(workerId);
    return id;
  }

  /** Sends the request, or joins the job already waiting for the same user and type. */
  async function enqueue(request: TrainRequest): Promise<string> {
    const key = runKey(request.userId, request.modelType);
    for (let attempt = 0; attempt < 50; attempt++) {
      const id = await send(request);
      if (id !== null) return id;
      const [queued] = await boss.findJobs(TRAINING_QUEUE, { key, queued: true, limit: 1 });
      if (queued !== undefined) return queued.id;
      // The waiting job started between the two statements: a new one may wait now.
    }
    throw new TrainingJobFailed(`could not queue a training job for ${key}`);
  }

  async function work(execute: ExecuteTrain, [job]: Job<TrainRequest>[]): Promise<JobOutput> {
    const request = job!.data;
    try {
      const outcome = await execute(request, job!.signal);
      if (outcome === null) return { skipped: true, reason: "no longer needed" };
      return { modelId: outcome.model.model_id, version: outcome.model.version, activated: outcome.activated, reason: outcome.reason };
    } catch (err) {
      const error = domainError(err);
      if (error === null) {
        log.error("training job attempt failed", {
          jobId: job!.id,
          attempt: job!.retryCount + 1,
          key: runKey(request.userId, request.modelType),
          error: message(err),
        });
        throw err;
      }
      if (request.trigger !== "train") log.info("background training job declined", { jobId: job!.id, trigger: request.trigger, reason: error.message });
      return { error };
    }
  }

  return {
    runsFor(execute) {
      registered.push(
        boss
          .work<TrainRequest, JobOutput>(
            TRAINING_QUEUE,
            {
              localConcurrency: settings.localConcurrency,
              batchSize: 1,
              // NOTIFY wakes workers for new jobs only: retries after their delay and jobs of dead replicas are found by polling.
              pollingIntervalSeconds: 1,
              notifyPollingIntervalSeconds: 1,
            },
            (jobs) => {
              const task = work(execute, jobs);
              running.add(task);
              void task
                .catch(() => undefined)
                .finally(() => {
                  running.delete(task);
                  // pg-boss records the completion right after the handler returns: look again shortly.
                  const id = jobs[0]?.id;
                  if (id !== undefined) setTimeout(() => nudges.get(id)?.(), 3);
                });
              return task;
            },
          )
          .then((id) => {
            workerId = id;
          }),
      );
      return {
        async run(request, signal) {
          for (;;) {
            const id = await enqueue(request);
            const outcome = await waitFor(id, request, signal);
            // The job joined was a re-blend that was no longer needed: this request still is (it is never skipped itself).
            if (outcome !== null || request.reblendOf !== undefined) return outcome;
          }
        },
        async submit(requests) {
          let taken = 0;
          for (const request of requests) if ((await send(request)) !== null) taken++;
          return taken;
        },
        // The database dedupes: a local guess would only hide another replica's jobs.
        busy: () => false,
        async idle() {
          while (running.size > 0) await Promise.allSettled([...running]);
        },
      };
    },
    async ready() {
      await Promise.all(registered);
    },
    async schedulePopulation(cron, tick) {
      await boss.work(POPULATION_SCHEDULE_QUEUE, { pollingIntervalSeconds: 5 }, async () => {
        await tick();
      });
      await boss.schedule(POPULATION_SCHEDULE_QUEUE, cron, null, { tz: "UTC" });
    },
    async listJobs(userId, modelType, limit) {
      const jobs = await boss.findJobs<TrainRequest>(TRAINING_QUEUE, { key: runKey(userId, modelType), limit: 100_000 });
      return jobs
        .slice(-limit)
        .reverse()
        .map((job) => {
          const output = (job.output ?? {}) as JobOutput & { message?: string };
          return {
            id: job.id,
            userId,
            modelType,
            trigger: job.data.trigger,
            state: job.state,
            retries: job.retryCount,
            createdAt: job.createdOn,
            startedAt: job.startedOn ?? null,
            finishedAt: job.completedOn ?? null,
            version: output.version ?? null,
            activated: output.activated === true,
            outcome: output.error?.message ?? output.reason ?? output.message ?? "",
          };
        });
    },
    async stop() {
      stopping.abort(new TrainingJobFailed("this replica is shutting down; the job stays in the queue"));
      await boss.stop({ graceful: true, timeout: 30_000 });
    },
  };
}

/** The cron of a population refit every `hours` (UTC): at the hours divisible by it below a day, at midnight every `hours / 24` days (day of month) above. */
export function populationCron(hours: number): string {
  if (hours < 24) return `0 */${hours} * * *`;
  const days = Math.round(hours / 24);
  return days <= 1 ? "0 0 * * *" : `0 0 */${days} * *`;
}
