import type { DatabasePool } from "slonik";
import type { ModelTypeName } from "../domain.ts";
import { NotEnoughTrainingData } from "../errors.ts";
import { activeModel, activateModel, insertModel, modelBlob, type ModelRow } from "../db/models.ts";
import { countTrainingSamplesAfter, trainingSamplesFor } from "../db/training-data.ts";
import { defaultForestKind, forestAlgorithm } from "../ml/algorithms.ts";
import type { TrainJob, TrainResult } from "../ml/train-model.ts";
import type { KeyedLock } from "./keyed-lock.ts";
import type { ModelCache } from "./model-cache.ts";
import { toTrainingSet } from "./training-set.ts";

/** Runs a training job off the event loop (the piscina pool in production). */
export type TrainJobRunner = (job: TrainJob, signal?: AbortSignal) => Promise<TrainResult>;

/** Training settings from config. */
export interface TrainerSettings {
  readonly minSamples: Record<ModelTypeName, number>;
  /** Newest samples used per fit. */
  readonly maxSamples: number;
  readonly nEstimators: number;
  /** New samples after which Feedback triggers a background retrain. */
  readonly retrainAfter: number;
  /** Fewest unseen rows for a head-to-head comparison with the active model. */
  readonly minComparisonSamples: number;
}

/** What Train answers. */
export interface TrainOutcome {
  readonly model: ModelRow;
  readonly activated: boolean;
  readonly reason: string;
}

/** Fits, stores and (when good) activates model versions. */
export interface Trainer {
  train(userId: string, modelType: ModelTypeName, signal?: AbortSignal): Promise<TrainOutcome>;
  /** Retrains in the background when enough new samples arrived since the active version; true when scheduled. */
  maybeRetrain(userId: string, modelType: ModelTypeName): Promise<boolean>;
  /** Resolves when every background retrain has finished (for shutdown and tests). */
  idle(): Promise<void>;
}

/** Dependencies of the trainer. */
export interface TrainerDeps {
  readonly db: DatabasePool;
  readonly runJob: TrainJobRunner;
  readonly lock: KeyedLock;
  readonly cache: ModelCache;
  readonly settings: TrainerSettings;
  readonly onBackgroundError: (err: unknown, userId: string, modelType: ModelTypeName) => void;
  /** Called after a version becomes active, so per-user caches can drop the old one. */
  readonly onActivated?: (model: ModelRow) => void;
}

function percent(x: number): string {
  return `${(x * 100).toFixed(1)}%`;
}

/** Deterministic per-user seed, so retraining on the same data gives the same model. */
function seedFor(userId: string, modelType: string): number {
  let h = 2166136261;
  for (const ch of `${modelType}:${userId}`) h = Math.imul(h ^ ch.codePointAt(0)!, 16777619);
  return h >>> 0;
}

/** Builds the trainer; Train calls for one user and type never interleave. */
export function createTrainer(deps: TrainerDeps): Trainer {
  const { db, runJob, lock, cache, settings } = deps;
  const background = new Set<Promise<unknown>>();

  async function trainNow(userId: string, modelType: ModelTypeName, signal?: AbortSignal): Promise<TrainOutcome> {
    const samples = await trainingSamplesFor(db, userId, modelType, settings.maxSamples);
    const set = toTrainingSet(modelType, samples);
    const need = settings.minSamples[modelType];
    if (set.rows.length < need) throw new NotEnoughTrainingData(userId, modelType, set.rows.length, need);

    const active = await activeModel(db, userId, modelType);
    let activeBlob: TrainJob["active"];
    if (active !== null) {
      const unseenFrom = set.seqs.findIndex((seq) => seq > active.training_data_seq);
      const blob = await modelBlob(db, active.model_id);
      if (unseenFrom >= 0 && blob?.model_data != null) {
        activeBlob = { format: blob.model_format, blob: new Uint8Array(blob.model_data), unseenFrom };
      }
    }
    const job: TrainJob = {
      rows: set.rows,
      labels: set.labels,
      nClasses: set.nClasses,
      format: defaultForestKind,
      options: { nEstimators: settings.nEstimators, seed: seedFor(userId, modelType) },
      ...(activeBlob === undefined ? {} : { active: activeBlob }),
    };
    const result = await runJob(job, signal);
    const { evaluation, comparison } = result;
    const stored = await insertModel(db, {
      userId,
      modelType,
      format: result.format,
      modelData: result.modelData,
      trainingAccuracy: evaluation.accuracy,
      evaluation: { ...evaluation, ...(comparison === undefined ? {} : { comparison }) },
      trainingSamples: set.rows.length,
      trainingDataSeq: set.seqs.at(-1) ?? 0n,
    });

    let activate: boolean;
    let reason: string;
    if (active === null) {
      activate = true;
      reason = `first ${modelType} model for this user (held-out accuracy ${percent(evaluation.accuracy)}, ${evaluation.method})`;
    } else if (comparison !== undefined && comparison.samples >= settings.minComparisonSamples) {
      activate = comparison.candidateAccuracy >= comparison.activeAccuracy;
      reason =
        `on ${comparison.samples} samples that ${active.version} never saw, the new version scored ` +
        `${percent(comparison.candidateAccuracy)} against ${percent(comparison.activeAccuracy)}` +
        (activate ? "" : `; ${active.version} stays active`);
    } else {
      const previous = active.training_accuracy ?? 0;
      activate = evaluation.accuracy >= previous;
      reason =
        `by ${evaluation.method}, the new version scored ${percent(evaluation.accuracy)} against ` +
        `${percent(previous)} for ${active.version}` +
        (comparison === undefined ? "" : ` (only ${comparison.samples} new samples, too few for a head-to-head test)`) +
        (activate ? "" : `; ${active.version} stays active`);
    }
    const model = activate ? ((await activateModel(db, stored.model_id)) ?? stored) : stored;
    cache.put(model.model_id, forestAlgorithm(result.format).load(result.modelData), result.modelData.byteLength);
    if (activate) deps.onActivated?.(model);
    return { model, activated: activate, reason };
  }

  return {
    train(userId, modelType, signal) {
      return lock.run(`${modelType}:${userId}`, () => trainNow(userId, modelType, signal));
    },
    async maybeRetrain(userId, modelType) {
      const key = `${modelType}:${userId}`;
      if (lock.busy(key)) return false;
      const active = await activeModel(db, userId, modelType);
      const since = active?.training_data_seq ?? 0n;
      const fresh = await countTrainingSamplesAfter(db, userId, modelType, since);
      // A first model waits for the minimum; later ones for retrainAfter new samples.
      if (fresh < settings.retrainAfter || (active === null && fresh < settings.minSamples[modelType])) return false;
      const run = lock
        .run(key, () => trainNow(userId, modelType))
        .catch((err: unknown) => deps.onBackgroundError(err, userId, modelType));
      background.add(run);
      void run.finally(() => background.delete(run));
      return true;
    },
    async idle() {
      while (background.size > 0) await Promise.all([...background]);
    },
  };
}
