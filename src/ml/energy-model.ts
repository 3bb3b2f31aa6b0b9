import type { EnergyFeatureValues } from "../domain.ts";
import { applyCalibration, applyTemperature } from "./calibration.ts";
import { circadianPrior } from "./circadian-prior.ts";
import { mixProbabilities } from "./blend.ts";
import { energyFeatureRow } from "./features.ts";
import { ForestFormatError, type Forest } from "./forest.ts";
import { dayProfile, hourProfile, levelProbabilities, userLevelFeatures, type UserStats } from "./user-stats.ts";

/**
 * The production energy model.
 *
 * v2 (energy-user-v2, energy-population-v2): a user's model is a blend of
 * candidates, p = calibrate( sum_k w_k p_k(x) ), with weights fitted on the
 * user's held-out rows (train-energy.ts). The candidates: the spec's
 * per-user forest on raw features, a per-user forest on the features below
 * at the user's shift, the pooled population model given the user's stats
 * (user-stats.ts), the circadian prior at the shift, and the user's level,
 * hour and weekday profiles. Nothing decides in advance which suits a user.
 *
 * v1 (energy-user-v1, energy-population-v1), still read for versions stored
 * before v2: p = calibrate( w p_user + (1 - w) p_population at the user's
 * shift ) with w = n / (n + 150), the population being one forest over
 * users' hours aligned by their shifts. A v1 population model is also a
 * candidate ("population") of a v2 user's blend.
 */

/** Column names of the forest rows below (cyclical hour and weekday, baseline relative to the population, NaN = missing). */
export const ENERGY_MODEL_FEATURES = [
  "hour_sin",
  "hour_cos",
  "hour",
  "day_of_week",
  "weekend",
  "tasks_completed_today",
  "avg_energy_relative",
  "sleep_quality",
] as const;

/** Wraps an hour into [0, 24). */
export function wrapHour(hour: number): number {
  return ((hour % 24) + 24) % 24;
}

/** The forest row of features at the hour shifted by `shift` (the user's clock moved onto the population's). */
export function energyModelRow(f: EnergyFeatureValues, shift: number, populationMeanAvg: number): number[] {
  const h = wrapHour(f.hour_of_day - shift);
  const angle = (2 * Math.PI * h) / 24;
  return [
    Math.sin(angle),
    Math.cos(angle),
    h,
    f.day_of_week,
    f.day_of_week >= 5 ? 1 : 0,
    f.tasks_completed_today,
    f.avg_energy_last_7_days - populationMeanAvg,
    f.sleep_quality ?? Number.NaN,
  ];
}

/** Shifts tried when placing a user's day, in hours. */
export const SHIFT_GRID: readonly number[] = Array.from({ length: 25 }, (_, i) => -6 + i * 0.5);

/** What the population says at features x (or the circadian prior when there is no population model). */
export function populationProbabilities(population: PopulationModel | null, f: EnergyFeatureValues, shift: number): number[] {
  if (population === null) return circadianPrior(f.hour_of_day - shift);
  return population.forest.predictProba(energyModelRow(f, shift, population.meta.meanAvg));
}

/**
 * The user's chronotype shift: the grid value that makes their samples most
 * likely under the population model, with a normal prior (sd in hours) that
 * keeps the estimate near 0 until the data says otherwise.
 */
export function estimateShift(population: PopulationModel | null, samples: readonly EnergyFeatureValues[], labels: readonly number[], priorSd = 2): number {
  return estimateShiftWith((shift, f) => populationProbabilities(population, f, shift), samples, labels, priorSd);
}

/** The shift that makes samples most likely under any model of the day placed at that shift. */
export function estimateShiftWith(
  probabilitiesAt: (shift: number, f: EnergyFeatureValues) => readonly number[],
  samples: readonly EnergyFeatureValues[],
  labels: readonly number[],
  priorSd: number,
): number {
  if (samples.length === 0) return 0;
  let best = 0;
  let bestScore = Number.NEGATIVE_INFINITY;
  for (const shift of SHIFT_GRID) {
    let score = -(shift * shift) / (2 * priorSd * priorSd);
    for (let i = 0; i < samples.length; i++) {
      const p = probabilitiesAt(shift, samples[i]!);
      // Floor the probability so one surprising label cannot veto a shift.
      score += Math.log(Math.max(0.02, p[labels[i]!] ?? 0));
    }
    if (score > bestScore + 1e-12) {
      bestScore = score;
      best = shift;
    }
  }
  return best;
}

/** Settings stored with a population model. */
export interface PopulationMeta {
  readonly kind: "population";
  readonly meanAvg: number;
  readonly temperature: number;
  readonly forestKind: string;
}

/** A loaded population model. */
export interface PopulationModel {
  readonly meta: PopulationMeta;
  readonly forest: Forest;
}

/** Settings stored with a user's model. */
export interface UserModelMeta {
  readonly kind: "user";
  /** Which population version the shift was estimated against (null: the circadian prior). */
  readonly populationModelId: string | null;
  readonly shift: number;
  /** Weight of the user's own forest, 0-1. */
  readonly userWeight: number;
  readonly temperature: number;
  readonly meanAvg: number;
  /** Kind of the user's own forest, or null when there is none (too few samples). */
  readonly forestKind: string | null;
}

/** A loaded user model (its population is resolved at prediction time). */
export interface UserModel {
  readonly meta: UserModelMeta;
  readonly forest: Forest | null;
}

/** Probabilities of a user's model for features f. */
export function predictUser(model: UserModel, population: PopulationModel | null, f: EnergyFeatureValues): number[] {
  const { meta } = model;
  const pop = populationProbabilities(population, f, meta.shift);
  let p = pop;
  if (model.forest !== null && meta.userWeight > 0) {
    const own = model.forest.predictProba(energyModelRow(f, meta.shift, meta.meanAvg));
    p = pop.map((x, i) => (1 - meta.userWeight) * x + meta.userWeight * (own[i] ?? 0));
  }
  return applyTemperature(p, meta.temperature);
}

/** Probabilities of the population model alone for a user with no data (shift 0, its own calibration). */
export function predictPopulation(population: PopulationModel, f: EnergyFeatureValues, shift = 0): number[] {
  return applyTemperature(populationProbabilities(population, f, shift), population.meta.temperature);
}

/** The predictors a user's blended model can mix. */
export const CANDIDATES = ["spec", "own", "pooled", "population", "prior", "level", "profile", "weekday"] as const;
/**
 * One candidate: "spec", the spec's recipe (the user's forest on the five raw
 * features); "own", the user's forest on engineered features at their shift;
 * "pooled", the pooled population model given the user's stats; "population",
 * a v1 population model at the user's shift; "prior", the circadian prior at
 * their shift; "level", the user's smoothed label frequencies; "profile" and
 * "weekday", their label frequencies around this hour and on this weekday,
 * shrunk toward their level (no forest: right from a handful of samples).
 */
export type CandidateName = (typeof CANDIDATES)[number];

/** Settings stored with a pooled population model. */
export interface PooledPopulationMeta {
  readonly kind: "pooled-population";
  readonly meanAvg: number;
  readonly temperature: number;
  readonly forestKind: string;
  /** Label frequencies over all users: what a user with no history is assumed to have. */
  readonly classFrequencies: readonly number[];
  /** Weights of (pooled model, circadian prior) in a new user's answer, fitted on users the model never saw. */
  readonly coldWeights: readonly number[];
  /** User folds; blob part k + 1 is the forest fitted without fold k's users (empty when that left no one). */
  readonly folds: number;
  /** Each trained-on user's fold (populations of up to FOLD_MAP_USERS users; larger ones fold by a hash of the id). */
  readonly userFolds?: Readonly<Record<string, number>>;
}

/** A loaded pooled population: the forest that answers, and the leave-fold-out forests that score it honestly. */
export interface PooledPopulation {
  readonly meta: PooledPopulationMeta;
  readonly forest: Forest;
  /**
   * Loaded for a training job's user only: a forest that never saw their rows
   * (their fold's, or the full forest when they were not in the population);
   * null when there is none, undefined when not asked for.
   */
  readonly honest?: Forest | null;
}

/** Settings stored with a user's blended model. */
export interface BlendedUserMeta {
  readonly kind: "blended-user";
  /** The population version the blend was fitted with (null: none). */
  readonly populationModelId: string | null;
  readonly shift: number;
  readonly meanAvg: number;
  readonly temperature: number;
  /** Share of the uniform distribution mixed in after the temperature (calibration.ts); absent in models stored before it: 0. */
  readonly floor?: number;
  /** Kind of the user's forests (blob parts 0: spec, 1: own), or null when there are none. */
  readonly forestKind: string | null;
  /** Weights fitted on held-out rows; candidates not listed weigh 0. */
  readonly weights: Readonly<Partial<Record<CandidateName, number>>>;
  readonly stats: UserStats;
  /** Level the user's frequencies shrink toward (the population's, or uniform). */
  readonly classFrequencies: readonly number[];
}

/** A loaded blended user model. */
export interface BlendedUser {
  readonly meta: BlendedUserMeta;
  readonly spec: Forest | null;
  readonly own: Forest | null;
}

/** The row the pooled forest sees: engineered features (no shift: the user's stats place their day) and user-level features. */
export function pooledRow(f: EnergyFeatureValues, stats: Readonly<UserStats>, meanAvg: number, classFrequencies: readonly number[]): number[] {
  return [...energyModelRow(f, 0, meanAvg), ...userLevelFeatures(stats, f, classFrequencies)];
}

/** The pooled model's probabilities for a user with these stats (a new user: NO_HISTORY). */
export function pooledProbabilities(
  population: PooledPopulation,
  stats: Readonly<UserStats>,
  f: EnergyFeatureValues,
  forest: Forest = population.forest,
): number[] {
  return forest.predictProba(pooledRow(f, stats, population.meta.meanAvg, population.meta.classFrequencies));
}

/** Any loaded population model. */
export type AnyPopulation = PopulationModel | PooledPopulation;

/** One candidate's probabilities (null when the model cannot give it). */
export function candidateProbabilities(
  name: CandidateName,
  model: Pick<BlendedUser, "spec" | "own"> & { readonly meta: Pick<BlendedUserMeta, "shift" | "meanAvg" | "stats" | "classFrequencies"> },
  population: AnyPopulation | null,
  f: EnergyFeatureValues,
  pooledForest?: Forest | null,
): number[] | null {
  const { meta } = model;
  switch (name) {
    case "spec":
      return model.spec === null ? null : model.spec.predictProba(energyFeatureRow(f));
    case "own":
      return model.own === null ? null : model.own.predictProba(energyModelRow(f, meta.shift, meta.meanAvg));
    case "pooled": {
      if (population === null || population.meta.kind !== "pooled-population") return null;
      const forest = pooledForest === undefined ? (population as PooledPopulation).forest : pooledForest;
      return forest === null ? null : pooledProbabilities(population as PooledPopulation, meta.stats, f, forest);
    }
    case "population":
      return population === null || population.meta.kind !== "population" ? null : populationProbabilities(population as PopulationModel, f, meta.shift);
    case "prior":
      return circadianPrior(f.hour_of_day - meta.shift);
    case "level":
      return levelProbabilities(meta.stats, meta.classFrequencies);
    case "profile":
      return hourProfile(meta.stats, f, meta.classFrequencies);
    case "weekday":
      return dayProfile(meta.stats, f, meta.classFrequencies);
  }
}

/** Probabilities of a blended user model: the weighted candidates, then its calibration (temperature and floor). */
export function predictBlended(model: BlendedUser, population: AnyPopulation | null, f: EnergyFeatureValues): number[] {
  const weights: number[] = [];
  const candidates: number[][] = [];
  for (const name of CANDIDATES) {
    const w = model.meta.weights[name] ?? 0;
    if (w <= 0) continue;
    const p = candidateProbabilities(name, model, population, f);
    if (p === null) continue;
    weights.push(w);
    candidates.push(p);
  }
  return applyCalibration(mixProbabilities(weights, candidates), { temperature: model.meta.temperature, floor: model.meta.floor ?? 0 });
}

/** Format names in ml_models.model_format (v1: kept readable for versions stored before the blend). */
export const ENERGY_USER_FORMAT = "energy-user-v1";
/** Format name of v1 population models (one aligned forest). */
export const ENERGY_POPULATION_FORMAT = "energy-population-v1";
/** Format of a user's blended model: candidates mixed by weights fitted on held-out rows. */
export const ENERGY_BLENDED_FORMAT = "energy-user-v2";
/** Format of the pooled population model: one forest over all users with user-level features. */
export const ENERGY_POOLED_FORMAT = "energy-population-v2";

/** Every kind of header an envelope may carry. */
export type EnvelopeMeta = UserModelMeta | PopulationMeta | BlendedUserMeta | PooledPopulationMeta;
const KINDS: readonly string[] = ["user", "population", "blended-user", "pooled-population"];

const MAGIC = [0x4d, 0x4c, 0x45, 0x31]; // "MLE1"

const pad8 = (n: number) => n + ((8 - (n % 8)) % 8);

/**
 * Packs settings and forest blobs: magic, header length, JSON header, then
 * each blob. The JSON is padded with spaces and each blob to 8 bytes, so
 * every forest starts 8-byte aligned and its loader reads it in place. With
 * several blobs (an array) their lengths go into the header as `parts`.
 */
export function encodeEnvelope(meta: EnvelopeMeta, forest: Uint8Array | null | readonly Uint8Array[]): Uint8Array {
  const parts = forest === null ? [] : forest instanceof Uint8Array ? [forest] : forest;
  const header = Array.isArray(forest) ? { ...meta, parts: parts.map((p) => p.byteLength) } : meta;
  const json = new TextEncoder().encode(JSON.stringify(header));
  const headerBytes = pad8(json.byteLength);
  const bodyBytes = parts.reduce((a, p, i) => a + (i === parts.length - 1 ? p.byteLength : pad8(p.byteLength)), 0);
  const out = new Uint8Array(8 + headerBytes + bodyBytes);
  out.set(MAGIC, 0);
  new DataView(out.buffer).setUint32(4, headerBytes, true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.byteLength, 8 + headerBytes); // spaces: still valid JSON
  let at = 8 + headerBytes;
  for (const p of parts) {
    out.set(p, at);
    at += pad8(p.byteLength);
  }
  return out;
}

/** Unpacks encodeEnvelope's bytes; a foreign or cut blob is a ForestFormatError saying what was found. */
export function decodeEnvelope(blob: Uint8Array): { meta: EnvelopeMeta; forest: Uint8Array | null; parts: Uint8Array[] } {
  if (blob.byteLength < 8 || MAGIC.some((b, i) => blob[i] !== b)) {
    throw new ForestFormatError(`not an energy model: expected magic MLE1, found ${blob.byteLength} bytes starting ${[...blob.slice(0, 4)].join(",")}`);
  }
  const length = new DataView(blob.buffer, blob.byteOffset, blob.byteLength).getUint32(4, true);
  if (8 + length > blob.byteLength) throw new ForestFormatError(`energy model header says ${length} bytes but only ${blob.byteLength - 8} follow`);
  let meta: EnvelopeMeta & { parts?: unknown };
  try {
    meta = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(blob.subarray(8, 8 + length))) as EnvelopeMeta;
  } catch {
    throw new ForestFormatError("energy model header is not valid JSON");
  }
  const kind = (meta as { kind?: unknown } | null)?.kind;
  if (typeof kind !== "string" || !KINDS.includes(kind)) throw new ForestFormatError(`unknown energy model kind ${String(kind)}`);
  const rest = blob.subarray(8 + length);
  if (!Array.isArray(meta.parts)) return { meta, forest: rest.byteLength === 0 ? null : rest, parts: rest.byteLength === 0 ? [] : [rest] };
  const parts: Uint8Array[] = [];
  let at = 0;
  for (const size of meta.parts as unknown[]) {
    if (typeof size !== "number" || !Number.isInteger(size) || size < 0 || at + size > rest.byteLength) {
      throw new ForestFormatError(`energy model part of ${String(size)} bytes does not fit in the ${rest.byteLength} bytes that follow`);
    }
    parts.push(rest.subarray(at, at + size));
    at += pad8(size);
  }
  return { meta, forest: parts[0] ?? null, parts };
}
