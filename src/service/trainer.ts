import type { DatabasePool } from "slonik";
import { ENERGY_LABELS, type EnergyFeatureValues, type ModelTypeName, POPULATION } from "../domain.ts";
import { NotEnoughTrainingData } from "../errors.ts";
import { silentLogger, type Logger } from "../logger.ts";
import { activeModel, modelBlob, modelById, storeVersion, usersFittedWithoutPopulation, type ModelRow } from "../db/models.ts";
import { countTrainingSamplesAfter, populationSamples, trainingSamplesBefore, trainingSamplesFor } from "../db/training-data.ts";
import { defaultForestKind } from "../ml/algorithms.ts";
import { decodeEnvelope, ENERGY_BLENDED_FORMAT, ENERGY_USER_FORMAT } from "../ml/energy-model.ts";
import { loadedModelBytes, loadModel } from "../ml/loaded-model.ts";
import type { StoredModelBlob, UserModelSettings, UserSamples } from "../ml/train-energy.ts";
import type { TrainResult } from "../ml/train-model.ts";
import type { AnyTrainJob } from "../ml/train-worker.ts";
import { decideActivation } from "./activation-decision.ts";
import type { KeyedLock } from "./keyed-lock.ts";
import type { ModelCache } from "./model-cache.ts";
import { createInProcessRuns, type ExecuteTrain, type TrainingRuns, type TrainRequest } from "./training-runs.ts";
import { toTrainingSet } from "./training-set.ts";

/** Runs a training job off the event loop (the piscina pool in production). */
export type TrainJobRunner = (job: AnyTrainJob, signal?: AbortSignal) => Promise<TrainResult>;

/** Training settings from config. */
export interface TrainerSettings {
  readonly minSamples: Record<ModelTypeName, number>;
  /** Newest samples used per fit of a user's model. */
  readonly maxSamples: number;
  /** Newest samples (of all users) used per fit of the population model. */
  readonly maxPopulationSamples: number;
  /** Newest samples each user contributes to a population fit (the total stays bounded by maxPopulationSamples). */
  readonly maxPopulationSamplesPerUser: number;
  /** Fewest users with data before a population model is trained. */
  readonly minPopulationUsers: number;
  readonly nEstimators: number;
  /** New samples after which Feedback triggers a background retrain. */
  readonly retrainAfter: number;
  /** Fewest unseen rows for a head-to-head comparison with the active model. */
  readonly minComparisonSamples: number;
  /** How a user's model borrows from the population. */
  readonly userModel: UserModelSettings;
  /** Share of one core a training worker may use (0-1], so that serving keeps its latency while models fit. */
  readonly cpuShare: number;
  /** Most users re-blended after a population model activates (0: none); each is one user Train in the background. */
  readonly maxReblendUsers: number;
}

/** What Train answers. */
export interface TrainOutcome {
  readonly model: ModelRow;
  readonly activated: boolean;
  readonly reason: string;
}

/** What started a training run, as the activation log records it. */
export type Trigger = "train" | "retrain:new-samples" | "retrain:drift" | "schedule" | "population:first" | "population:growth" | "population:reblend";

/** What a caller hands a training run besides its subject: when to give up, and the request id its log lines carry. */
export interface TrainCallOptions {
  readonly signal?: AbortSignal;
  /** The id of the call that asked for this run (plain data: the job's log lines carry it, the worker never sees a logger). */
  readonly requestId?: string;
}

/** A background run outlives the call that caused it, so only its request id goes along: its log lines name the call. */
export type BackgroundCallOptions = Pick<TrainCallOptions, "requestId">;

/** Fits, stores and (when good) activates model versions. */
export interface Trainer {
  /** Trains now; userId POPULATION with energy_prediction trains the population model. */
  train(userId: string, modelType: ModelTypeName, trigger?: Trigger, options?: TrainCallOptions): Promise<TrainOutcome>;
  /** Retrains in the background when enough new samples arrived since the active version; true when scheduled. */
  maybeRetrain(userId: string, modelType: ModelTypeName, call?: BackgroundCallOptions): Promise<boolean>;
  /** Retrains in the background on the user's most recent `recentSamples` samples only, after drift; true when scheduled. */
  retrainAfterDrift(userId: string, modelType: ModelTypeName, recentSamples: number, call?: BackgroundCallOptions): Promise<boolean>;
  /** Resolves when every background retrain has finished (for shutdown and tests). */
  idle(): Promise<void>;
  /** Starts no further re-blend pass (shutdown: a pass over thousands of users must not hold it up); runs under way finish. */
  stopBackground(): void;
}

/** Dependencies of the trainer. */
export interface TrainerDeps {
  readonly db: DatabasePool;
  readonly runJob: TrainJobRunner;
  readonly lock: KeyedLock;
  readonly cache: ModelCache;
  readonly settings: TrainerSettings;
  /** Hears each training job's start, end and failure; default silent. */
  readonly log?: Logger;
  readonly onBackgroundError: (err: unknown, userId: string, modelType: ModelTypeName) => void;
  /** Called after a version becomes active, so per-user caches can drop the old one. */
  readonly onActivated?: (model: ModelRow) => void;
  /** Where runs happen, given what executes one here; default: in this process under `lock` (the embedded database). */
  readonly runs?: (execute: ExecuteTrain) => TrainingRuns;
}

/** Deterministic per-user seed, so retraining on the same data gives the same model. */
function seedFor(userId: string, modelType: string): number {
  let h = 2166136261;
  for (const ch of `${modelType}:${userId}`) h = Math.imul(h ^ ch.codePointAt(0)!, 16777619);
  return h >>> 0;
}

async function storedBlob(db: DatabasePool, model: ModelRow | null): Promise<StoredModelBlob | null> {
  if (model === null) return null;
  const blob = await modelBlob(db, model.model_id);
  if (blob?.model_data == null) return null;
  return { modelId: model.model_id, format: blob.model_format, blob: new Uint8Array(blob.model_data) };
}

/** A plan for one training run: the job, and what to store with its result. */
interface Plan {
  readonly job: AnyTrainJob;
  readonly samples: number;
  readonly lastSeq: bigint;
  readonly sinceSeq: bigint;
}

/** Builds the trainer; training runs for one user and type never interleave. */
export function createTrainer(deps: TrainerDeps): Trainer {
  const { db, runJob, lock, cache, settings } = deps;
  const rootLog = deps.log ?? silentLogger;
  let stopping = false;
  const background = new Set<Promise<unknown>>();
  const lastDriftRetrain = new Map<string, bigint>();
  // calibrate: false: the energy model calibrates the blend of user and
  // population forests on held-out folds, and the suggester ranks tasks by one
  // class's probability across rows, which a per-row top-label map distorts
  // (npm run eval with it on: suggestions' top-3 hit 79.2% vs 83.8%).
  const options = (userId: string, modelType: string) => ({ nEstimators: settings.nEstimators, seed: seedFor(userId, modelType), calibrate: false });

  async function planPopulation(active: ModelRow | null): Promise<Plan> {
    const rows = await populationSamples(db, settings.maxPopulationSamples, settings.maxPopulationSamplesPerUser);
    const byUser = new Map<string, { userId: string; samples: EnergyFeatureValues[]; labels: number[]; unseenFrom: number }>();
    let lastSeq = 0n;
    for (const row of rows) {
      const label = (ENERGY_LABELS as readonly string[]).indexOf(row.label);
      if (label < 0) continue;
      const user = byUser.get(row.user_id) ?? { userId: row.user_id, samples: [], labels: [], unseenFrom: -1 };
      // Rows come oldest first: the first one after the active version's data starts what it never saw.
      if (user.unseenFrom < 0 && active !== null && row.seq > active.training_data_seq) user.unseenFrom = user.samples.length;
      user.samples.push(row.feature_vector as unknown as EnergyFeatureValues);
      user.labels.push(label);
      byUser.set(row.user_id, user);
      if (row.seq > lastSeq) lastSeq = row.seq;
    }
    const users: UserSamples[] = [...byUser.values()].map((u) => ({ ...u, unseenFrom: u.unseenFrom < 0 ? u.samples.length : u.unseenFrom }));
    const total = users.reduce((a, u) => a + u.samples.length, 0);
    const need = settings.minSamples.energy_prediction * settings.minPopulationUsers;
    if (users.length < settings.minPopulationUsers || total < need) {
      throw new NotEnoughTrainingData(
        POPULATION,
        "energy_prediction",
        total,
        need,
        `the population model has ${total} sample(s) from ${users.length} user(s); it needs at least ${need} ` +
          `from at least ${settings.minPopulationUsers} users (add samples with IngestTrainingData, then call Train again)`,
      );
    }
    const activeBlob = await storedBlob(db, active);
    return {
      job: {
        kind: "energy-population",
        users,
        forestKind: defaultForestKind,
        options: options(POPULATION, "population"),
        ...(activeBlob === null ? {} : { active: activeBlob }),
      },
      samples: total,
      lastSeq,
      sinceSeq: 0n,
    };
  }

  async function planUser(userId: string, modelType: ModelTypeName, active: ModelRow | null, sinceOverride?: bigint): Promise<Plan> {
    const sinceSeq = sinceOverride ?? active?.training_since_seq ?? 0n;
    const stored = await trainingSamplesFor(db, userId, modelType, settings.maxSamples, sinceSeq);
    const set = toTrainingSet(modelType, stored);
    const need = settings.minSamples[modelType];
    if (set.rows.length < need) throw new NotEnoughTrainingData(userId, modelType, set.rows.length, need);
    const unseenFrom = active === null ? -1 : set.seqs.findIndex((seq) => seq > active.training_data_seq);
    const activeBlob = unseenFrom >= 0 ? await storedBlob(db, active) : null;
    const base = { samples: set.rows.length, lastSeq: set.seqs.at(-1) ?? 0n, sinceSeq };
    if (modelType === "task_suggester") {
      return {
        ...base,
        job: {
          kind: "forest",
          rows: set.rows,
          labels: set.labels,
          nClasses: set.nClasses,
          format: defaultForestKind,
          options: options(userId, modelType),
          ...(activeBlob === null ? {} : { active: { format: activeBlob.format, blob: activeBlob.blob, unseenFrom } }),
        },
      };
    }
    const population = await storedBlob(db, await activeModel(db, POPULATION, "energy_prediction"));
    // After a drift the model trains on a recent window; older samples still teach the user's own forest.
    let earlier: UserSamples | undefined;
    if (sinceSeq > 0n) {
      const before = toTrainingSet(modelType, await trainingSamplesBefore(db, userId, modelType, settings.maxSamples, sinceSeq));
      earlier = { samples: before.features, labels: before.labels };
    }
    let activePopulation: StoredModelBlob | null = null;
    if (activeBlob !== null && (activeBlob.format === ENERGY_USER_FORMAT || activeBlob.format === ENERGY_BLENDED_FORMAT)) {
      const { meta } = decodeEnvelope(activeBlob.blob);
      const id = meta.kind === "user" || meta.kind === "blended-user" ? meta.populationModelId : null;
      activePopulation = id === null ? null : id === population?.modelId ? population : await storedBlob(db, await modelById(db, id));
    }
    return {
      ...base,
      job: {
        kind: "energy-user",
        userId,
        samples: set.features,
        labels: set.labels,
        population,
        forestKind: defaultForestKind,
        options: options(userId, modelType),
        settings: settings.userModel,
        ...(earlier === undefined || earlier.samples.length === 0 ? {} : { earlier, shiftPriorSd: 6 }),
        ...(activeBlob === null ? {} : { active: { model: activeBlob, population: activePopulation, unseenFrom } }),
      },
    };
  }

  async function trainNow(
    userId: string,
    modelType: ModelTypeName,
    trigger: Trigger,
    call: TrainCallOptions = {},
    sinceOverride?: bigint,
  ): Promise<TrainOutcome> {
    const active = await activeModel(db, userId, modelType);
    const plan =
      userId === POPULATION && modelType === "energy_prediction" ? await planPopulation(active) : await planUser(userId, modelType, active, sinceOverride);
    const log = rootLog.child({
      ...(call.requestId ? { requestId: call.requestId } : {}),
      job: plan.job.kind,
      userId,
      modelType,
      trigger,
    });
    const started = performance.now();
    log.info("training job started", { samples: plan.samples });
    let result: TrainResult;
    try {
      result = await runJob({ ...plan.job, cpuShare: settings.cpuShare }, call.signal);
    } catch (err) {
      log.error("training job failed", { durationMs: Math.round(performance.now() - started), error: err });
      throw err;
    }
    log.info("training job finished", {
      durationMs: Math.round(performance.now() - started),
      accuracy: result.evaluation.accuracy,
      modelBytes: result.modelData.byteLength,
    });
    const { evaluation, comparison } = result;
    const what = userId === POPULATION ? "population" : modelType;
    const decided = decideActivation(active, result, what, settings.minComparisonSamples);
    const drift =
      trigger === "retrain:drift"
        ? `drift in live accuracy; the user's day re-placed from the ${plan.samples} most recent samples (older ones realigned); `
        : "";
    const {
      model,
      activated: activate,
      reason,
    } = await storeVersion(
      db,
      {
        userId,
        modelType,
        format: result.format,
        modelData: result.modelData,
        trainingAccuracy: evaluation.accuracy,
        evaluation: {
          ...evaluation,
          trigger,
          ...(comparison === undefined ? {} : { comparison }),
          ...(result.baseline === undefined ? {} : { baseline: result.baseline }),
          // Which population the blend borrowed from: a newer one re-blends the users fitted without it.
          ...(plan.job.kind === "energy-user" ? { population_model_id: plan.job.population?.modelId ?? null } : {}),
        },
        trainingSamples: plan.samples,
        trainingDataSeq: plan.lastSeq,
        trainingSinceSeq: plan.sinceSeq,
        ece: evaluation.ece,
        brier: evaluation.brier,
      },
      (activeNow) =>
        // Another version went live while this one trained (an ActivateModel, another replica): that choice stands.
        activeNow?.model_id !== active?.model_id
          ? { activate: false, trigger, reason: `${activeNow?.version ?? "no version"} became active while this version trained; it stays active` }
          : { activate: decided.activate, trigger, reason: drift + decided.reason },
    );
    const loaded = loadModel(result.format, result.modelData);
    cache.put(model.model_id, loaded, loadedModelBytes(loaded, result.modelData.byteLength));
    log.info("model version stored", { modelId: model.model_id, version: model.version, activated: activate, reason });
    if (activate) deps.onActivated?.(model);
    if (activate && userId === POPULATION) reblendAfter(model.model_id);
    return { model, activated: activate, reason };
  }

  // The population a user's blend borrows from is fixed when the user trains: users who trained before the
  // first population model (on a fresh deployment, the first arrivals) or before a better one would keep the
  // old one until their next retrain. So each activation re-blends them in the background (one at a time in
  // this process; as queued jobs on PostgreSQL); each new version goes through the usual decision (kept only
  // if it scores at least the active one).
  function reblendAfter(populationModelId: string): void {
    if (settings.maxReblendUsers <= 0 || stopping) return;
    const task = (async () => {
      const users = await usersFittedWithoutPopulation(db, populationModelId, settings.maxReblendUsers);
      await runs.submit(users.map((userId) => ({ userId, modelType: "energy_prediction", trigger: "population:reblend", reblendOf: populationModelId })));
    })().catch((err: unknown) => deps.onBackgroundError(err, POPULATION, "energy_prediction"));
    background.add(task);
    void task.finally(() => background.delete(task));
  }

  const execute: ExecuteTrain = async (request, signal) => {
    const { userId, modelType, trigger } = request;
    if (request.reblendOf !== undefined) {
      // A newer population superseded this one (its own pass takes over), or the user trained since the
      // list was read, with this population already.
      const population = await activeModel(db, POPULATION, "energy_prediction");
      if (population?.model_id !== request.reblendOf) return null;
      const active = await activeModel(db, userId, modelType);
      if (active === null || active.evaluation["population_model_id"] === request.reblendOf) return null;
    }
    return trainNow(
      userId,
      modelType,
      trigger,
      { ...(signal === undefined ? {} : { signal }), ...requestIdOf(request) },
      request.sinceSeq === undefined ? undefined : BigInt(request.sinceSeq),
    );
  };
  const runs =
    deps.runs?.(execute) ??
    createInProcessRuns({ execute, lock, onBackgroundError: (err, userId, modelType) => deps.onBackgroundError(err, userId, modelType) });

  async function train(request: TrainRequest, signal?: AbortSignal): Promise<TrainOutcome> {
    const outcome = await runs.run(request, signal);
    // Only re-blends are ever skipped.
    if (outcome === null) throw new Error(`training run for ${request.userId} was skipped`);
    return outcome;
  }

  return {
    train(userId, modelType, trigger = "train", options = {}) {
      return train({ userId, modelType, trigger, ...requestIdOf(options) }, options.signal);
    },
    async maybeRetrain(userId, modelType, call = {}) {
      if (runs.busy(userId, modelType)) return false;
      const active = await activeModel(db, userId, modelType);
      const since = active?.training_data_seq ?? 0n;
      const fresh = await countTrainingSamplesAfter(db, userId, modelType, since);
      // A first model waits for the minimum; later ones for retrainAfter new samples.
      if (fresh < settings.retrainAfter || (active === null && fresh < settings.minSamples[modelType])) return false;
      return (await runs.submit([{ userId, modelType, trigger: "retrain:new-samples", ...requestIdOf(call) }])) > 0;
    },
    async retrainAfterDrift(userId, modelType, recentSamples, call = {}) {
      const key = `${modelType}:${userId}`;
      if (runs.busy(userId, modelType)) return false;
      // At most one drift retrain per 10 new samples: a declined challenger must not start a storm.
      const previous = lastDriftRetrain.get(key);
      if (previous !== undefined && (await countTrainingSamplesAfter(db, userId, modelType, previous)) < 10) return false;
      const window = Math.max(recentSamples, settings.minSamples[modelType]);
      const recent = await trainingSamplesFor(db, userId, modelType, window);
      if (recent.length < settings.minSamples[modelType]) return false;
      const since = recent[0]!.seq;
      lastDriftRetrain.set(key, recent.at(-1)!.seq);
      return (await runs.submit([{ userId, modelType, trigger: "retrain:drift", sinceSeq: since.toString(), ...requestIdOf(call) }])) > 0;
    },
    stopBackground() {
      stopping = true;
    },
    async idle() {
      // A run that finishes may start a re-blend, which may submit more runs.
      for (;;) {
        await Promise.all([...background]);
        await runs.idle();
        if (background.size === 0) return;
      }
    },
  };
}

/** The request id as an optional property: absent (never undefined or empty) when no call named one. */
function requestIdOf(call: { readonly requestId?: string | undefined }): { requestId?: string } {
  return call.requestId ? { requestId: call.requestId } : {};
}
