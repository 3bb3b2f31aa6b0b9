import type { EnergyFeatureValues } from "../domain.ts";
import { forestAlgorithm } from "./algorithms.ts";
import { fitBlendWeights, mixProbabilities } from "./blend.ts";
import { applyCalibration, applyTemperature, fitCalibration, fitTemperature } from "./calibration.ts";
import { circadianPrior } from "./circadian-prior.ts";
import {
  CANDIDATES,
  candidateProbabilities,
  ENERGY_BLENDED_FORMAT,
  ENERGY_POOLED_FORMAT,
  encodeEnvelope,
  energyModelRow,
  estimateShift,
  estimateShiftWith,
  pooledProbabilities,
  pooledRow,
  predictUser,
  type AnyPopulation,
  type BlendedUserMeta,
  type CandidateName,
  type PooledPopulation,
  type PooledPopulationMeta,
  type PopulationModel,
  type UserModel,
  type UserModelMeta,
} from "./energy-model.ts";
import { headToHead, heldOutPredictions, score, seededRandom, userFold } from "./evaluation.ts";
import { energyFeatureRow } from "./features.ts";
import { energyScorer, loadModel, loadPopulation } from "./loaded-model.ts";
import type { Forest, ForestOptions } from "./forest.ts";
import type { Comparison, Evaluation, TrainResult } from "./train-model.ts";
import { addToStats, NO_HISTORY, levelCounts, statsOf, type UserStats } from "./user-stats.ts";

/**
 * Training jobs of the production energy model (see energy-model.ts). Pure:
 * plain data in, plain data out, the same in a worker and in a test.
 *
 * A user's model is a blend of candidates (the spec's per-user forest, the
 * user's forest on engineered features, the pooled population model, the
 * circadian prior, the user's label frequencies) with weights fitted on the
 * user's own held-out rows: nothing about which one suits a user is assumed.
 * The pooled population model is one forest over all users whose rows carry
 * the user's level and their level near each hour and weekday, estimated from
 * their other rows, so it learns how much a user's history says about them.
 */

/** A stored model handed to a job. */
export interface StoredModelBlob {
  readonly modelId: string;
  readonly format: string;
  readonly blob: Uint8Array;
}

/** Settings of a user's model. */
export interface UserModelSettings {
  /** Weight of the population against the user's forest when placing a day moved by drift: w = n / (n + priorWeight). */
  readonly priorWeight: number;
  /** Fewest samples before a user gets forests of their own. */
  readonly minForestSamples: number;
  /** Pseudo-rows of the blend weights' prior: how much held-out evidence it takes to move them. */
  readonly blendStrength: number;
}

/** Default settings. */
export const DEFAULT_USER_MODEL_SETTINGS: UserModelSettings = { priorWeight: 150, minForestSamples: 10, blendStrength: 3 };

/** Fit a user's model. */
export interface UserEnergyJob {
  readonly kind: "energy-user";
  /** Picks the user's fold of the pooled population, whose forest never saw them. */
  readonly userId?: string;
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
  /** Index of the first row the active population version never saw (default: none unseen). */
  readonly unseenFrom?: number;
  /** Decides the user's fold (see userFold); rows without one are folded by position. */
  readonly userId?: string;
  readonly samples: readonly EnergyFeatureValues[];
  readonly labels: readonly number[];
}

/** Fit the population model over many users. */
export interface PopulationJob {
  readonly kind: "energy-population";
  readonly users: readonly UserSamples[];
  /** The active population version: both answer new users on the rows it never saw. */
  readonly active?: StoredModelBlob;
  readonly forestKind: string;
  readonly options: ForestOptions;
}

/**
 * Fits the user's own forest on engineered features (temperature 1), at a
 * shift placed against a v1 population model or the prior. The forest sees
 * hours on that clock, so when the user's day moves, what it learned still
 * applies once the new shift is known.
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
    shift = estimateShiftWith(
      (s, f) => predictUser({ ...before.model, meta: { ...before.model.meta, shift: s } }, population, f),
      samples,
      labels,
      shiftPriorSd,
    );
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

/** How much the blend's prior favours each candidate before any held-out evidence: the pooled model, when there is one, most. */
const CANDIDATE_PRIOR: Readonly<Record<CandidateName, number>> = { spec: 1, own: 1, pooled: 3, population: 2, prior: 1, level: 1, profile: 1, weekday: 1 };

/** Blend weights below this are set to 0: the candidate's forest is then never walked at prediction time. */
const MIN_WEIGHT = 0.04;

/** The candidates fitted on some of a user's rows. */
interface FittedCandidates {
  readonly spec: Forest | null;
  readonly own: Forest | null;
  readonly shift: number;
  readonly meanAvg: number;
  readonly stats: UserStats;
  readonly classFrequencies: readonly number[];
}

/** Trains, evaluates (held-out, calibrated) and, when asked, compares with the active model. */
export function trainUserEnergy(job: UserEnergyJob): TrainResult {
  const population = job.population === null ? null : loadPopulation(job.population.blob, job.userId ?? "");
  const populationId = job.population?.modelId ?? null;
  const n = job.samples.length;
  if (n === 0) throw new RangeError("cannot train on 0 samples");
  const v1Population = population?.meta.kind === "population" ? (population as PopulationModel) : null;
  const pooled = population?.meta.kind === "pooled-population" ? (population as PooledPopulation) : null;
  const classFrequencies = pooled?.meta.classFrequencies ?? [1 / 3, 1 / 3, 1 / 3];
  // The pooled forest that never saw this user's rows scores them honestly; the full one answers afterwards.
  const honestPooled = pooled?.honest ?? null;

  const names = CANDIDATES.filter((name) => {
    if (name === "spec" || name === "own") return n >= job.settings.minForestSamples;
    if (name === "pooled") return honestPooled !== null;
    if (name === "population") return v1Population !== null;
    return true;
  });
  const withForests = names.includes("spec");
  // Inside the folds too: a candidate scored as something else than what it will predict with would be weighed wrongly.
  const ownSettings = { ...job.settings, minForestSamples: withForests ? 1 : Number.POSITIVE_INFINITY };
  const noForest = { ...job.settings, minForestSamples: Number.POSITIVE_INFINITY };
  // `forests`: which of the user's forests to fit (the final fit skips those the blend gave no weight).
  const fit = (idx: readonly number[] | null, forests = { spec: withForests, own: withForests }): FittedCandidates => {
    const samples = idx === null ? job.samples : idx.map((i) => job.samples[i]!);
    const labels = idx === null ? job.labels : idx.map((i) => job.labels[i]!);
    // Fold forests only weigh candidates: half the trees keep Train fast at a small cost in the weights' precision.
    const options = idx === null ? job.options : { ...job.options, nEstimators: Math.max(10, Math.round(job.options.nEstimators / 2)) };
    const own = fitUserModel(
      samples,
      labels,
      v1Population,
      populationId,
      job.forestKind,
      options,
      forests.own ? ownSettings : noForest,
      job.earlier,
      job.shiftPriorSd,
    );
    const spec = forests.spec ? forestAlgorithm(job.forestKind).fit(samples.map(energyFeatureRow), labels, 3, { ...options, seed: options.seed + 1 }) : null;
    return { spec, own: own.model.forest, shift: own.model.meta.shift, meanAvg: own.model.meta.meanAvg, stats: statsOf(samples, labels), classFrequencies };
  };
  const predictAll = (fitted: FittedCandidates, f: EnergyFeatureValues, pooledForest: Forest | null) =>
    names.map(
      (name) =>
        candidateProbabilities(name, { spec: fitted.spec, own: fitted.own, meta: fitted }, population, f, pooledForest) ?? circadianPrior(f.hour_of_day),
    );

  const held = heldOutPredictions(job.labels, job.options.seed, (train, test) => {
    const fitted = fit(train);
    return test.map((i) => predictAll(fitted, job.samples[i]!, honestPooled).flat());
  });
  const truth = held.rows.map((i) => job.labels[i]!);
  const perCandidate = names.map((_, k) => held.probabilities.map((flat) => flat.slice(3 * k, 3 * k + 3)));
  const fitted = fitBlendWeights(
    perCandidate,
    truth,
    names.map((name) => CANDIDATE_PRIOR[name]),
    job.settings.blendStrength,
  );
  // A candidate that adds almost nothing still costs a forest walk per Predict: drop it (and score the blend without it).
  const kept = fitted.map((w) => (w < MIN_WEIGHT ? 0 : w));
  const keptSum = kept.reduce((a, b) => a + b, 0);
  const weights = keptSum > 0 ? kept.map((w) => w / keptSum) : fitted;
  const blended = held.probabilities.map((_, r) =>
    mixProbabilities(
      weights,
      perCandidate.map((rows) => rows[r]!),
    ),
  );
  // Too few held-out rows to fit a calibration: keep the population's temperature, which was fitted on many users.
  const calibration = fitCalibration(blended, truth) ?? { temperature: population?.meta.temperature ?? 1, floor: 0 };
  const calibrated = blended.map((p) => applyCalibration(p, calibration));
  const rounded = Object.fromEntries(names.map((name, k) => [name, Math.round(weights[k]! * 1e4) / 1e4]));
  const evaluation: Evaluation = { ...score(calibrated, truth), method: `${held.method} (blend weights fitted on the same held-out rows)`, weights: rounded };

  const final = fit(null, { spec: (rounded["spec"] ?? 0) > 0, own: (rounded["own"] ?? 0) > 0 });
  const meta: BlendedUserMeta = {
    kind: "blended-user",
    populationModelId: populationId,
    shift: final.shift,
    meanAvg: final.meanAvg,
    temperature: calibration.temperature,
    floor: calibration.floor,
    forestKind: final.spec === null && final.own === null ? null : job.forestKind,
    weights: rounded,
    stats: final.stats,
    classFrequencies,
  };
  // A forest of weight 0 was not fitted: it would only be stored, loaded and kept in memory.
  const parts = [final.spec?.serialize() ?? new Uint8Array(0), final.own?.serialize() ?? new Uint8Array(0)];
  const result: TrainResult = { format: ENERGY_BLENDED_FORMAT, modelData: encodeEnvelope(meta, parts), evaluation };
  if (job.active === undefined) return result;

  const active = job.active;
  const activePopulation = active.population === null ? null : loadPopulation(active.population.blob);
  const comparison = compare(job, held.rows, calibrated, activePredictor(active.model, activePopulation));
  return comparison === undefined ? result : { ...result, comparison };
}

/** Predictions of a stored energy model of any format we have written. */
export function activePredictor(model: StoredModelBlob, population: AnyPopulation | null): (f: EnergyFeatureValues) => number[] {
  return energyScorer(loadModel(model.format, model.blob), population);
}

function compare(
  job: UserEnergyJob,
  idx: readonly number[],
  candidate: readonly number[][],
  activePredict: (f: EnergyFeatureValues) => number[],
): Comparison | undefined {
  const unseenFrom = job.active!.unseenFrom;
  return headToHead(
    idx.flatMap((i, k) => (i < unseenFrom ? [] : [{ label: job.labels[i]!, candidate: candidate[k]!, active: () => activePredict(job.samples[i]!) }])),
  );
}

/** Largest population whose users' folds are stored with it (an id and a digit each: about 200 KB). */
export const FOLD_MAP_USERS = 5000;

/** History sizes drawn per user when building pooled rows: a share of new users, the rest log-uniform up to 300. */
const HISTORY_DRAWS = 4;
const MAX_HISTORY = 300;

/**
 * The pooled forest's training rows. Each row carries its user's stats from a
 * random subset of their OTHER rows (never its own label), of a random size
 * from none to hundreds, so the forest learns how far to trust a history of
 * each length: the situation of every user it will answer.
 */
export function pooledTrainingRows(
  users: readonly UserSamples[],
  meanAvg: number,
  classFrequencies: readonly number[],
  seed: number,
): { rows: number[][]; labels: number[] } {
  const random = seededRandom(seed);
  const rows: number[][] = [];
  const labels: number[] = [];
  for (const u of users) {
    const n = u.samples.length;
    const draws = Array.from({ length: HISTORY_DRAWS }, () => {
      const most = Math.min(n - 1, MAX_HISTORY);
      const size = most < 1 || random() < 0.15 ? 0 : Math.min(most, Math.round(Math.exp(random() * Math.log(most + 1))));
      // Partial Fisher-Yates: a uniform subset of `size` rows.
      const order = Array.from({ length: n }, (_, i) => i);
      for (let i = 0; i < size; i++) {
        const j = i + Math.floor(random() * (n - i));
        [order[i], order[j]] = [order[j]!, order[i]!];
      }
      const chosen = new Set(order.slice(0, size));
      return { stats: statsOf(u.samples, u.labels, [...chosen]), chosen };
    });
    u.samples.forEach((f, i) => {
      const draw = draws[Math.floor(random() * HISTORY_DRAWS)]!;
      const label = u.labels[i]!;
      const inside = draw.chosen.has(i);
      if (inside) addToStats(draw.stats, f, label, -1);
      rows.push(pooledRow(f, draw.stats, meanAvg, classFrequencies));
      if (inside) addToStats(draw.stats, f, label, 1);
      labels.push(label);
    });
  }
  return { rows, labels };
}

/**
 * Trains the pooled population model. Users are split into folds by id; the
 * forest fitted without a fold scores that fold's users cold (no data of
 * theirs) for the evaluation, and later scores their own rows inside their
 * user-model fits without having seen them. The circadian prior is scored on
 * the same rows, so the first population model is activated only if it
 * beats having none.
 */
export function trainPopulation(job: PopulationJob): TrainResult {
  const users = job.users.filter((u) => u.samples.length > 0);
  if (users.length === 0) throw new RangeError("cannot train a population model without samples");
  const all = users.flatMap((u) => u.samples);
  const meanAvg = all.reduce((a, f) => a + f.avg_energy_last_7_days, 0) / all.length;
  const counts = levelCounts(
    statsOf(
      all,
      users.flatMap((u) => [...u.labels]),
    ),
  );
  const total = counts[0] + counts[1] + counts[2];
  const classFrequencies = counts.map((c) => (c + 1) / (total + 3));
  const forestKind = job.forestKind;
  const fitOn = (members: readonly UserSamples[], nEstimators: number, seed: number) => {
    const { rows, labels } = pooledTrainingRows(members, meanAvg, classFrequencies, seed);
    return forestAlgorithm(forestKind).fit(rows, labels, 3, { ...job.options, nEstimators, seed, minSamplesLeaf: job.options.minSamplesLeaf ?? 5 });
  };
  const k = users.length >= 2 ? Math.min(5, users.length) : 0;
  // Up to FOLD_MAP_USERS users, folds are dealt in turn (in the order of their ids' hashes) and stored, so
  // every fold has users; beyond, a hash of the id spreads them evenly enough and needs no map.
  const mapped = users.length <= FOLD_MAP_USERS && users.every((u) => u.userId !== undefined);
  const foldOf = users.map((u, i) => (u.userId === undefined ? i % Math.max(1, k) : userFold(u.userId, Math.max(1, k))));
  if (mapped) {
    const order = users.map((u, i) => ({ i, h: userFold(u.userId!, 2 ** 32) })).sort((a, b) => a.h - b.h || a.i - b.i);
    order.forEach(({ i }, position) => (foldOf[i] = position % Math.max(1, k)));
  }
  const foldForests: (Forest | null)[] = [];
  const probabilities: number[][] = [];
  const prior: number[][] = [];
  const truth: number[] = [];
  const unseen: boolean[] = [];
  const rowsOf: EnergyFeatureValues[] = [];
  const meta0: PooledPopulationMeta = {
    kind: "pooled-population",
    meanAvg,
    temperature: 1,
    forestKind,
    classFrequencies,
    folds: k,
    coldWeights: [1, 0],
    ...(mapped ? { userFolds: Object.fromEntries(users.map((u, i) => [u.userId!, foldOf[i]!])) } : {}),
  };
  for (let fold = 0; fold < k; fold++) {
    const train = users.filter((_, i) => foldOf[i] !== fold);
    const test = users.filter((_, i) => foldOf[i] === fold);
    if (train.length === 0 || test.length === 0) {
      foldForests.push(train.length === 0 ? null : fitOn(train, Math.max(10, Math.round(job.options.nEstimators / 2)), job.options.seed + 1 + fold));
      continue;
    }
    const forest = fitOn(train, Math.max(10, Math.round(job.options.nEstimators / 2)), job.options.seed + 1 + fold);
    foldForests.push(forest);
    const model: PooledPopulation = { meta: meta0, forest };
    for (const u of test) {
      u.samples.forEach((f, i) => {
        probabilities.push(pooledProbabilities(model, NO_HISTORY, f));
        prior.push(circadianPrior(f.hour_of_day));
        truth.push(u.labels[i]!);
        rowsOf.push(f);
        unseen.push(i >= (u.unseenFrom ?? u.samples.length));
      });
    }
  }
  // A new user's answer mixes the pooled model with the prior, by weights fitted on users the folds never saw.
  let coldWeights = truth.length > 0 ? fitBlendWeights([probabilities, prior], truth, [1, 1]) : [1, 0];
  let cold = probabilities.map((p, i) => mixProbabilities(coldWeights, [p, prior[i]!]));
  const priorAccuracy = score(prior, truth).accuracy;
  if (truth.length > 0 && score(cold, truth).accuracy <= priorAccuracy) {
    // Not better than the prior for new users: they keep the prior, and the model serves only inside
    // user models, where each user's held-out rows weigh it.
    coldWeights = [0, 1];
    cold = prior;
  }
  const temperature = fitTemperature(cold, truth);
  const scored = score(
    cold.map((p) => applyTemperature(p, temperature)),
    truth,
  );
  const evaluation: Evaluation & { users: number } = {
    ...scored,
    weights: { pooled: Math.round(coldWeights[0]! * 1e4) / 1e4, prior: Math.round(coldWeights[1]! * 1e4) / 1e4 },
    users: users.length,
    method:
      truth.length > 0
        ? `leave-users-out cross-validation (${k} folds) over ${users.length} users, cold start (no data of the user)`
        : "not evaluated: one user",
  };
  const final = fitOn(users, job.options.nEstimators, job.options.seed);
  const meta: PooledPopulationMeta = { ...meta0, temperature, coldWeights: coldWeights.map((w) => Math.round(w * 1e4) / 1e4) };
  let comparison: Comparison | undefined;
  if (job.active !== undefined) {
    // Head to head for new users, on rows the active version never saw (this one's from users its folds never saw).
    const activeAnswer = activePredictor(job.active, null);
    comparison = headToHead(truth.flatMap((label, r) => (unseen[r] ? [{ label, candidate: cold[r]!, active: () => activeAnswer(rowsOf[r]!) }] : [])));
  }
  const parts = [final.serialize(), ...foldForests.map((f) => f?.serialize() ?? new Uint8Array(0))];
  return {
    format: ENERGY_POOLED_FORMAT,
    modelData: encodeEnvelope(meta, parts),
    evaluation,
    baseline: { name: "circadian prior", accuracy: priorAccuracy, users: users.length },
    ...(comparison === undefined ? {} : { comparison }),
  };
}
