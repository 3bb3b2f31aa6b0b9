import type { EnergyFeatureValues } from "../domain.ts";
import { forestAlgorithm } from "./algorithms.ts";
import {
  ENERGY_BLENDED_FORMAT,
  ENERGY_POOLED_FORMAT,
  ENERGY_POPULATION_FORMAT,
  ENERGY_USER_FORMAT,
  decodeEnvelope,
  pooledProbabilities,
  predictBlended,
  predictPopulation,
  predictUser,
  type AnyPopulation,
  type BlendedUser,
  type PooledPopulation,
  type PopulationModel,
  type UserModel,
} from "./energy-model.ts";
import { applyTemperature } from "./calibration.ts";
import { NO_HISTORY } from "./user-stats.ts";
import { userFold } from "./evaluation.ts";
import { mixProbabilities } from "./blend.ts";
import { circadianPrior } from "./circadian-prior.ts";
import { energyFeatureRow } from "./features.ts";
import type { Forest } from "./forest.ts";

/**
 * Loads a population model blob of either format. Given a user id, the
 * pooled model's forest that never saw that user is loaded too (training
 * only: it scores the user's rows without having seen them).
 */
export function loadPopulation(blob: Uint8Array, forUser?: string): AnyPopulation {
  const { meta, parts } = decodeEnvelope(blob);
  if ((meta.kind !== "population" && meta.kind !== "pooled-population") || parts[0] === undefined) throw new RangeError("not a population model");
  const algorithm = forestAlgorithm(meta.forestKind);
  if (meta.kind === "population") return { meta, forest: algorithm.load(parts[0]) };
  const forest = algorithm.load(parts[0]);
  if (forUser === undefined) return { meta, forest };
  const mapped = meta.userFolds === undefined ? undefined : (meta.userFolds[forUser] ?? null);
  // A user the population never trained on may be scored by the full forest.
  if (mapped === null) return { meta, forest, honest: forest };
  if (meta.folds === 0) return { meta, forest, honest: null };
  const part = parts[(mapped ?? userFold(forUser, meta.folds)) + 1];
  return { meta, forest, honest: part === undefined || part.byteLength === 0 ? null : algorithm.load(part) };
}

/** Loads a v1 user model blob (its population is resolved by the caller). */
export function loadUserModel(blob: Uint8Array): UserModel {
  const { meta, forest } = decodeEnvelope(blob);
  if (meta.kind !== "user") throw new RangeError("not a user model");
  return { meta, forest: forest === null || meta.forestKind === null ? null : forestAlgorithm(meta.forestKind).load(forest) };
}

/** Loads a blended user model blob (its population is resolved by the caller). */
export function loadBlendedUser(blob: Uint8Array): BlendedUser {
  const { meta, parts } = decodeEnvelope(blob);
  if (meta.kind !== "blended-user") throw new RangeError("not a blended user model");
  const load = (p: Uint8Array | undefined) =>
    p === undefined || p.byteLength === 0 || meta.forestKind === null ? null : forestAlgorithm(meta.forestKind).load(p);
  return { meta, spec: load(parts[0]), own: load(parts[1]) };
}

/** What a population model says of a user with no data: pooled with empty stats, or v1 at shift 0; calibrated. */
export function predictAnyPopulation(population: AnyPopulation, f: EnergyFeatureValues): number[] {
  if (population.meta.kind === "population") return predictPopulation(population as PopulationModel, f);
  const pooled = population as PooledPopulation;
  const [w = 1, prior = 0] = pooled.meta.coldWeights;
  const p =
    prior > 0
      ? mixProbabilities([w, prior], [pooledProbabilities(pooled, NO_HISTORY, f), circadianPrior(f.hour_of_day)])
      : pooledProbabilities(pooled, NO_HISTORY, f);
  return applyTemperature(p, pooled.meta.temperature);
}

/** A stored model read back into memory, whatever its format. */
export type LoadedModel =
  | { readonly kind: "forest"; readonly forest: Forest }
  | { readonly kind: "user"; readonly model: UserModel }
  | { readonly kind: "blended"; readonly model: BlendedUser }
  | { readonly kind: "population"; readonly model: AnyPopulation };

/** Memory a loaded model holds, as far as its forests report it (else the blob's size). */
export function loadedModelBytes(model: LoadedModel, blobBytes: number): number {
  const forests = model.kind === "forest" ? [model.forest] : model.kind === "blended" ? [model.model.spec, model.model.own] : [model.model.forest];
  return Math.max(
    blobBytes,
    forests.reduce((a, f) => a + (f?.memoryBytes ?? 0), 0),
  );
}

/** Reads a model_data blob by its model_format; throws (ForestFormatError, RangeError) when it cannot. */
export function loadModel(format: string, blob: Uint8Array): LoadedModel {
  if (format === ENERGY_BLENDED_FORMAT) return { kind: "blended", model: loadBlendedUser(blob) };
  if (format === ENERGY_USER_FORMAT) return { kind: "user", model: loadUserModel(blob) };
  if (format === ENERGY_POPULATION_FORMAT || format === ENERGY_POOLED_FORMAT) return { kind: "population", model: loadPopulation(blob) };
  return { kind: "forest", forest: forestAlgorithm(format).load(blob) };
}

/** The population version a user's energy model was fitted with, which must be loaded to predict with it (null: none). */
export function populationIdOf(model: LoadedModel): string | null {
  return model.kind === "user" || model.kind === "blended" ? model.model.meta.populationModelId : null;
}

/** Energy probabilities of a loaded model of any format, with the population it was fitted with: the one switch on formats. */
export function energyScorer(model: LoadedModel, population: AnyPopulation | null): (f: EnergyFeatureValues) => number[] {
  switch (model.kind) {
    case "blended":
      return (f) => predictBlended(model.model, population, f);
    case "user": {
      const v1 = population?.meta.kind === "population" ? (population as PopulationModel) : null;
      return (f) => predictUser(model.model, v1, f);
    }
    case "population":
      return (f) => predictAnyPopulation(model.model, f);
    case "forest":
      // A version from before the population model: a forest on the spec's five raw features.
      return (f) => model.forest.predictProba(energyFeatureRow(f));
  }
}
