import type { EnergyFeatureValues } from "../domain.ts";
import { forestAlgorithm } from "./algorithms.ts";
import { applyTemperature, fitTemperature } from "./calibration.ts";
import {
  estimateShiftWith,
  ENERGY_POPULATION_FORMAT,
  ENERGY_USER_FORMAT,
  decodeEnvelope,
  encodeEnvelope,
  energyModelRow,
  estimateShift,
  predictPopulation,
  predictUser,
  type PopulationMeta,
  type PopulationModel,
  type UserModel,
  type UserModelMeta,
} from "./energy-model.ts";
import { argmax, heldOutPredictions, score, seededRandom } from "./evaluation.ts";
import type { ForestOptions } from "./forest.ts";
import type { Comparison, Evaluation, TrainResult } from "./train-model.ts";

/**
 * Training jobs of the production energy model (see energy-model.ts). Pure:
 * plain data in, plain data out, the same in a worker and in a test.
 */

/** A stored model handed to a job. */
export interface StoredModelBlob {
  readonly modelId: string;
  readonly format: string;
  readonly blob: Uint8Array;
}

/** How much a user's own forest counts: w = n / (n + priorWeight). */
export interface UserModelSettings {
  readonly priorWeight: number;
  /** Fewest samples before a user gets a forest of their own. */
  readonly minForestSamples: number;
}

/** Default settings, chosen with `npm run eval`. */
export const DEFAULT_USER_MODEL_SETTINGS: UserModelSettings = { priorWeight: 150, minForestSamples: 30 };

/** Fit a user's model. */
export interface UserEnergyJob {
  readonly kind: "energy-user";
  readonly samples: readonly EnergyFeatureValues[];
  readonly labels: readonly number[];
  /** The active population model, if any. */
  readonly population: StoredModelBlob | null;
  readonly forestKind: string;
  readonly options: ForestOptions;
  readonly settings: UserModelSettings;
  /**
   * The user's samples from before a drift, when the model is trained on a
   * recent window: they keep teaching the user's own forest, aligned by the
   * shift they had then, but they do not decide the current shift.
   */
  readonly earlier?: UserSamples;
  /** Sd (hours) of the prior on the user's shift: 2 normally; wide after a drift, when the day is known to have moved. */
  readonly shiftPriorSd?: number;
  /** The active user model and its population, to compare on rows it never saw. */
  readonly active?: { readonly model: StoredModelBlob; readonly population: StoredModelBlob | null; readonly unseenFrom: number };
}

/** One user's samples in a population job. */
export interface UserSamples {
  readonly samples: readonly EnergyFeatureValues[];
  readonly labels: readonly number[];
}

/** Fit the population model over many users. */
export interface PopulationJob {
  readonly kind: "energy-population";
  readonly users: readonly UserSamples[];
  readonly forestKind: string;
  readonly options: ForestOptions;
  /** Rounds of (fit forest, re-estimate every user's shift). */
  readonly alignmentRounds?: number;
}

/** Loads a population model blob. */
export function loadPopulation(blob: Uint8Array): PopulationModel {
  const { meta, forest } = decodeEnvelope(blob);
  if (meta.kind !== "population" || forest === null) throw new RangeError("not a population model");
  return { meta, forest: forestAlgorithm(meta.forestKind).load(forest) };
}

/** Loads a user model blob (its population is resolved by the caller). */
export function loadUserModel(blob: Uint8Array): UserModel {
  const { meta, forest } = decodeEnvelope(blob);
  if (meta.kind !== "user") throw new RangeError("not a user model");
  return { meta, forest: forest === null || meta.forestKind === null ? null : forestAlgorithm(meta.forestKind).load(forest) };
}

/**
 * Fits a user's model (temperature 1) on samples, against a population model
 * (or the prior). The user's own forest sees hours on the population's clock
 * (shifted by the user's shift), so when the user's day moves, what it
 * learned still applies once the new shift is known.
 */
export function fitUserModel(
  samples: readonly EnergyFeatureValues[],
  labels: readonly number[],
  population: PopulationModel | null,
  populationModelId: string | null,
  forestKind: string,
  options: ForestOptions,
  settings: UserModelSettings,
  earlier?: UserSamples,
  shiftPriorSd = 2,
): { model: UserModel; forestBlob: Uint8Array | null } {
  const meanAvg = population?.meta.meanAvg ?? 2;
  let shift: number;
  let earlierShift = 0;
  if (earlier === undefined || earlier.samples.length === 0) {
    shift = estimateShift(population, samples, labels, shiftPriorSd);
  } else {
    // The user's day moved: fit their model on the earlier samples, then find where that
    // personal day now sits. Their own curve is sharper than the population's, so a few
    // recent samples place it better than the population model alone would.
    const before = fitUserModel(earlier.samples, earlier.labels, population, populationModelId, forestKind, options, settings);
    earlierShift = before.model.meta.shift;
    shift = estimateShiftWith((s, f) => predictUser({ ...before.model, meta: { ...before.model.meta, shift: s } }, population, f), samples, labels, shiftPriorSd);
  }
  const rows = samples.map((f) => energyModelRow(f, shift, meanAvg));
  const rowLabels = [...labels];
  if (earlier !== undefined) {
    for (const f of earlier.samples) rows.push(energyModelRow(f, earlierShift, meanAvg));
    rowLabels.push(...earlier.labels);
  }
  let forest = null;
  let forestBlob: Uint8Array | null = null;
  const n = rows.length;
  if (n >= settings.minForestSamples) {
    forest = forestAlgorithm(forestKind).fit(rows, rowLabels, 3, { ...options, minSamplesLeaf: options.minSamplesLeaf ?? 2 });
    forestBlob = forest.serialize();
  }
  const meta: UserModelMeta = {
    kind: "user",
    populationModelId,
    shift,
    userWeight: forest === null ? 0 : n / (n + settings.priorWeight),
    temperature: 1,
    meanAvg,
    forestKind: forest === null ? null : forestKind,
  };
  return { model: { meta, forest }, forestBlob };
}

/** Trains, evaluates (held-out, calibrated) and, when asked, compares with the active model. */
export function trainUserEnergy(job: UserEnergyJob): TrainResult {
  const population = job.population === null ? null : loadPopulation(job.population.blob);
  const populationId = job.population?.modelId ?? null;
  const n = job.samples.length;
  if (n === 0) throw new RangeError("cannot train on 0 samples");
  const fit = (samples: readonly EnergyFeatureValues[], labels: readonly number[]) =>
    fitUserModel(samples, labels, population, populationId, job.forestKind, job.options, job.settings, job.earlier, job.shiftPriorSd);
  const held = heldOutPredictions(job.labels, job.options.seed, (train, test) => {
    const { model } = fit(
      train.map((i) => job.samples[i]!),
      train.map((i) => job.labels[i]!),
    );
    return test.map((i) => predictUser(model, population, job.samples[i]!));
  });
  const truth = held.rows.map((i) => job.labels[i]!);
  // Too few held-out rows to fit a temperature: keep the population's, which was fitted on many users.
  const temperature = held.rows.length >= 30 ? fitTemperature(held.probabilities, truth) : (population?.meta.temperature ?? 1);
  const calibrated = held.probabilities.map((p) => applyTemperature(p, temperature));
  const evaluation: Evaluation = { ...score(calibrated, truth), method: held.method };

  const final = fit(job.samples, job.labels);
  const meta: UserModelMeta = { ...final.model.meta, temperature };
  const result: TrainResult = { format: ENERGY_USER_FORMAT, modelData: encodeEnvelope(meta, final.forestBlob), evaluation };
  if (job.active === undefined) return result;

  const comparison = compare(job, held.rows, calibrated, (f) => {
    const active = job.active!;
    const activePopulation = active.population === null ? null : loadPopulation(active.population.blob);
    return activePredictor(active.model, activePopulation)(f);
  });
  return comparison === undefined ? result : { ...result, comparison };
}

/** Predictions of a stored energy model of any format we have written. */
export function activePredictor(model: StoredModelBlob, population: PopulationModel | null): (f: EnergyFeatureValues) => number[] {
  if (model.format === ENERGY_USER_FORMAT) {
    const user = loadUserModel(model.blob);
    return (f) => predictUser(user, population, f);
  }
  if (model.format === ENERGY_POPULATION_FORMAT) {
    const pop = loadPopulation(model.blob);
    return (f) => predictPopulation(pop, f);
  }
  // Models from before the population model: a plain forest on the spec's five raw features.
  const forest = forestAlgorithm(model.format).load(model.blob);
  return (f) => forest.predictProba([f.hour_of_day, f.day_of_week, f.tasks_completed_today, f.avg_energy_last_7_days, f.sleep_quality ?? Number.NaN]);
}

function compare(
  job: UserEnergyJob,
  idx: readonly number[],
  candidate: readonly number[][],
  activePredict: (f: EnergyFeatureValues) => number[],
): Comparison | undefined {
  let samples = 0;
  let candidateHits = 0;
  let activeHits = 0;
  idx.forEach((i, k) => {
    if (i < job.active!.unseenFrom) return;
    samples++;
    if (argmax(candidate[k]!) === job.labels[i]) candidateHits++;
    if (argmax(activePredict(job.samples[i]!)) === job.labels[i]) activeHits++;
  });
  return samples === 0 ? undefined : { samples, candidateAccuracy: candidateHits / samples, activeAccuracy: activeHits / samples };
}

/**
 * Fits the population forest with users' hours aligned: fit, re-estimate every
 * user's shift under the fit, refit. Shifts are centred on their median so the
 * population's day stays where the typical user's is.
 */
export function fitPopulation(users: readonly UserSamples[], forestKind: string, options: ForestOptions, rounds = 2): PopulationModel {
  const all = users.flatMap((u) => u.samples);
  const meanAvg = all.length === 0 ? 2 : all.reduce((a, f) => a + f.avg_energy_last_7_days, 0) / all.length;
  const labels = users.flatMap((u) => [...u.labels]);
  let shifts = users.map(() => 0);
  const forestOptions: ForestOptions = { ...options, minSamplesLeaf: options.minSamplesLeaf ?? 5 };
  const meta: PopulationMeta = { kind: "population", meanAvg, temperature: 1, forestKind };
  let model: PopulationModel | null = null;
  for (let round = 0; round <= rounds; round++) {
    const rows = users.flatMap((u, ui) => u.samples.map((f) => energyModelRow(f, shifts[ui]!, meanAvg)));
    model = { meta, forest: forestAlgorithm(forestKind).fit(rows, labels, 3, forestOptions) };
    if (round === rounds) break;
    const current = model;
    shifts = users.map((u) => estimateShift(current, u.samples, u.labels));
    const sorted = [...shifts].sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)] ?? 0;
    shifts = shifts.map((s) => s - median);
  }
  return model!;
}

/** Trains the population model, evaluated on users it never saw, with no data of theirs (cold start). */
export function trainPopulation(job: PopulationJob): TrainResult {
  const users = job.users.filter((u) => u.samples.length > 0);
  if (users.length === 0) throw new RangeError("cannot train a population model without samples");
  const random = seededRandom(job.options.seed);
  const order = users.map((_, i) => i).sort(() => random() - 0.5);
  const k = Math.min(5, users.length);
  const probabilities: number[][] = [];
  const truth: number[] = [];
  if (k >= 2) {
    for (let fold = 0; fold < k; fold++) {
      const test = order.filter((_, j) => j % k === fold).map((i) => users[i]!);
      const train = order.filter((_, j) => j % k !== fold).map((i) => users[i]!);
      const model = fitPopulation(train, job.forestKind, job.options, job.alignmentRounds);
      for (const u of test) {
        u.samples.forEach((f, i) => {
          probabilities.push(predictPopulation(model, f));
          truth.push(u.labels[i]!);
        });
      }
    }
  }
  const temperature = fitTemperature(probabilities, truth);
  const evaluation: Evaluation = {
    ...score(probabilities.map((p) => applyTemperature(p, temperature)), truth),
    method: k >= 2 ? `${k}-fold cross-validation over ${users.length} users, cold start (no data of the user)` : "not evaluated: one user",
  };
  const final = fitPopulation(users, job.forestKind, job.options, job.alignmentRounds);
  const meta: PopulationMeta = { ...final.meta, temperature };
  return { format: ENERGY_POPULATION_FORMAT, modelData: encodeEnvelope(meta, final.forest.serialize()), evaluation };
}
