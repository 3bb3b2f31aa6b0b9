import type { EnergyFeatureValues } from "../domain.ts";
import { applyTemperature } from "./calibration.ts";
import { circadianPrior } from "./circadian-prior.ts";
import { ForestFormatError, type Forest } from "./forest.ts";

/**
 * The production energy model. A user's model borrows from the population:
 *
 *   p = calibrate( w · p_user(x) + (1 − w) · p_population(x aligned by the user's shift) )
 *
 * - The population model is one forest over all users' samples with each
 *   user's hours shifted by their chronotype, so it learns the shape of a
 *   day rather than the average of differently timed days.
 * - A user's shift is estimated from their own samples (maximum likelihood
 *   under the population model, with a prior that keeps it near 0 when
 *   samples are few); a handful of samples already places their day.
 * - The user's own forest adds what the population cannot know, weighted by
 *   w = n / (n + k): little at first, most of the answer with a long history.
 * - A temperature fitted on held-out predictions calibrates the result.
 *
 * Without a population model, the circadian prior plays its part.
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
export function populationProbabilities(
  population: PopulationModel | null,
  f: EnergyFeatureValues,
  shift: number,
): number[] {
  if (population === null) return circadianPrior(f.hour_of_day - shift);
  return population.forest.predictProba(energyModelRow(f, shift, population.meta.meanAvg));
}

/**
 * The user's chronotype shift: the grid value that makes their samples most
 * likely under the population model, with a normal prior (sd in hours) that
 * keeps the estimate near 0 until the data says otherwise.
 */
export function estimateShift(
  population: PopulationModel | null,
  samples: readonly EnergyFeatureValues[],
  labels: readonly number[],
  priorSd = 2,
): number {
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

/** Format names in ml_models.model_format. */
export const ENERGY_USER_FORMAT = "energy-user-v1";
/** Format name of population models. */
export const ENERGY_POPULATION_FORMAT = "energy-population-v1";

const MAGIC = [0x4d, 0x4c, 0x45, 0x31]; // "MLE1"

/**
 * Packs settings and an optional forest blob: magic, header length, JSON
 * header, forest bytes. The JSON is padded with spaces so the forest starts
 * 8-byte aligned, which lets the forest's loader read it in place.
 */
export function encodeEnvelope(meta: UserModelMeta | PopulationMeta, forest: Uint8Array | null): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(meta));
  const headerBytes = json.byteLength + ((8 - (json.byteLength % 8)) % 8);
  const out = new Uint8Array(8 + headerBytes + (forest?.byteLength ?? 0));
  out.set(MAGIC, 0);
  new DataView(out.buffer).setUint32(4, headerBytes, true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.byteLength, 8 + headerBytes); // spaces: still valid JSON
  if (forest !== null) out.set(forest, 8 + headerBytes);
  return out;
}

/** Unpacks encodeEnvelope's bytes; a foreign or cut blob is a ForestFormatError saying what was found. */
export function decodeEnvelope(blob: Uint8Array): { meta: UserModelMeta | PopulationMeta; forest: Uint8Array | null } {
  if (blob.byteLength < 8 || MAGIC.some((b, i) => blob[i] !== b)) {
    throw new ForestFormatError(`not an energy model: expected magic MLE1, found ${blob.byteLength} bytes starting ${[...blob.slice(0, 4)].join(",")}`);
  }
  const length = new DataView(blob.buffer, blob.byteOffset, blob.byteLength).getUint32(4, true);
  if (8 + length > blob.byteLength) throw new ForestFormatError(`energy model header says ${length} bytes but only ${blob.byteLength - 8} follow`);
  let meta: UserModelMeta | PopulationMeta;
  try {
    meta = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(blob.subarray(8, 8 + length))) as UserModelMeta | PopulationMeta;
  } catch {
    throw new ForestFormatError("energy model header is not valid JSON");
  }
  const kind = (meta as { kind?: unknown } | null)?.kind;
  if (kind !== "user" && kind !== "population") throw new ForestFormatError(`unknown energy model kind ${String(kind)}`);
  const rest = blob.subarray(8 + length);
  return { meta, forest: rest.byteLength === 0 ? null : rest };
}
