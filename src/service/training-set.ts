import { ENERGY_LABELS, SUGGESTER_LABELS, type EnergyFeatureValues, type ModelTypeName } from "../domain.ts";
import type { StoredSample } from "../db/training-data.ts";
import { energyFeatureRow } from "../ml/features.ts";
import { namedFeatureRow, SUGGESTER_FEATURE_NAMES } from "../ml/task-ranking.ts";

/** Rows and integer labels ready for a fit. */
export interface TrainingSet {
  readonly rows: number[][];
  readonly labels: number[];
  readonly nClasses: number;
  /** seq of each row, to tell which rows a model has seen. */
  readonly seqs: bigint[];
  /** The stored features of each row (energy samples: what the energy model's jobs take). */
  readonly features: EnergyFeatureValues[];
}

/** Turns stored samples into a training set; rows with an unknown label are skipped. */
export function toTrainingSet(modelType: ModelTypeName, samples: readonly StoredSample[]): TrainingSet {
  const classes: readonly string[] = modelType === "energy_prediction" ? ENERGY_LABELS : SUGGESTER_LABELS;
  const rows: number[][] = [];
  const labels: number[] = [];
  const seqs: bigint[] = [];
  const features: EnergyFeatureValues[] = [];
  for (const s of samples) {
    const label = classes.indexOf(s.label);
    if (label < 0) continue;
    rows.push(
      modelType === "energy_prediction"
        ? energyFeatureRow(s.feature_vector as unknown as EnergyFeatureValues)
        : namedFeatureRow(SUGGESTER_FEATURE_NAMES, s.feature_vector),
    );
    labels.push(label);
    seqs.push(s.seq);
    features.push(s.feature_vector as unknown as EnergyFeatureValues);
  }
  return { rows, labels, nClasses: classes.length, seqs, features };
}
