import { forestAlgorithm } from "./algorithms.ts";
import { ENERGY_POPULATION_FORMAT, ENERGY_USER_FORMAT, type PopulationModel, type UserModel } from "./energy-model.ts";
import type { Forest } from "./forest.ts";
import { loadPopulation, loadUserModel } from "./train-energy.ts";

/** A stored model read back into memory, whatever its format. */
export type LoadedModel =
  | { readonly kind: "forest"; readonly forest: Forest }
  | { readonly kind: "user"; readonly model: UserModel }
  | { readonly kind: "population"; readonly model: PopulationModel };

/** Memory a loaded model holds, as far as its forests report it (else the blob's size). */
export function loadedModelBytes(model: LoadedModel, blobBytes: number): number {
  const forest = model.kind === "forest" ? model.forest : model.model.forest;
  return Math.max(blobBytes, forest?.memoryBytes ?? 0);
}

/** Reads a model_data blob by its model_format; throws (ForestFormatError, RangeError) when it cannot. */
export function loadModel(format: string, blob: Uint8Array): LoadedModel {
  if (format === ENERGY_USER_FORMAT) return { kind: "user", model: loadUserModel(blob) };
  if (format === ENERGY_POPULATION_FORMAT) return { kind: "population", model: loadPopulation(blob) };
  return { kind: "forest", forest: forestAlgorithm(format).load(blob) };
}
