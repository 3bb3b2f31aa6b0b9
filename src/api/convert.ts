import { POPULATION } from "../domain.ts";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { EnergyLevel, ModelInfoSchema, ModelSource, ModelType, type ModelInfo } from "../../gen/ml/v1/ml_pb.ts";
import type { EnergyLabel, ModelTypeName } from "../domain.ts";
import type { ModelRow } from "../db/models.ts";
import type { ModelSourceName } from "../service/predictor.ts";

/** Database label of an API energy level (UNSPECIFIED has none). */
export function energyLabel(level: EnergyLevel): EnergyLabel | null {
  switch (level) {
    case EnergyLevel.LOW:
      return "low";
    case EnergyLevel.MEDIUM:
      return "medium";
    case EnergyLevel.HIGH:
      return "high";
    default:
      return null;
  }
}

/** API energy level of a database label. */
export function energyLevel(label: EnergyLabel): EnergyLevel {
  return label === "low" ? EnergyLevel.LOW : label === "medium" ? EnergyLevel.MEDIUM : EnergyLevel.HIGH;
}

/** Database name of an API model type (UNSPECIFIED has none). */
export function modelTypeName(type: ModelType): ModelTypeName | null {
  switch (type) {
    case ModelType.ENERGY_PREDICTION:
      return "energy_prediction";
    case ModelType.TASK_SUGGESTER:
      return "task_suggester";
    default:
      return null;
  }
}

/** The stored blend weights, keeping only finite numbers (older versions have none). */
function blendWeights(stored: unknown): Record<string, number> {
  if (stored === null || typeof stored !== "object") return {};
  return Object.fromEntries(Object.entries(stored).filter((e): e is [string, number] => typeof e[1] === "number" && Number.isFinite(e[1])));
}

/** The ModelInfo message of a stored version. */
export function modelInfo(row: ModelRow): ModelInfo {
  const method = row.evaluation["method"];
  return create(ModelInfoSchema, {
    modelId: row.model_id,
    userId: row.user_id,
    modelType: row.model_type === "energy_prediction" ? ModelType.ENERGY_PREDICTION : ModelType.TASK_SUGGESTER,
    version: row.version,
    isActive: row.is_active,
    accuracyScore: row.accuracy_score ?? 0,
    trainingAccuracy: row.training_accuracy ?? 0,
    trainingSamples: row.training_samples ?? 0,
    trainedAt: timestampFromMs(row.trained_at),
    evaluation: typeof method === "string" ? method : "",
    feedbackCount: row.feedback_count,
    feedbackCorrect: row.feedback_correct,
    expectedCalibrationError: row.ece ?? 0,
    brierScore: row.brier ?? 0,
    population: row.user_id === POPULATION,
    blendWeights: blendWeights(row.evaluation["weights"]),
  });
}

/** API enum of which model answered. */
export function modelSource(source: ModelSourceName): ModelSource {
  return source === "user" ? ModelSource.USER : source === "population" ? ModelSource.POPULATION : ModelSource.PRIOR;
}
