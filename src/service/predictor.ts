import { randomUUID } from "node:crypto";
import { ENERGY_LABELS, type EnergyFeatureValues, type EnergyLabel } from "../domain.ts";
import { PreconditionFailed } from "../errors.ts";
import type { ModelRow } from "../db/models.ts";
import { argmax } from "../ml/evaluation.ts";
import { energyFeatureRow, localHourAndWeekday } from "../ml/features.ts";
import type { ActiveModels } from "./active-models.ts";
import type { ModelCache } from "./model-cache.ts";
import type { PredictionLog } from "./prediction-log.ts";

/** What the caller knows about the user's recent days. */
export interface RecentActivity {
  readonly tasksCompletedToday: number;
  readonly avgEnergyLast7Days: number;
  readonly sleepQuality: number | null;
}

/** A Predict request after validation. */
export interface EnergyQuery {
  readonly userId: string;
  readonly targetTime: number;
  readonly timeZone: string;
  readonly activity: RecentActivity;
}

/** The model's answer, before logging. */
export interface EnergyEstimate {
  readonly energy: EnergyLabel;
  readonly probabilities: readonly number[];
  readonly confidence: number;
  readonly features: EnergyFeatureValues;
  readonly model: ModelRow;
}

/** A logged prediction. */
export interface EnergyPrediction extends EnergyEstimate {
  readonly predictionId: string;
}

/** Predicts energy with a user's active model. */
export interface Predictor {
  /** Predicts without logging (SuggestTasks logs its own record). */
  estimate(query: EnergyQuery): Promise<EnergyEstimate>;
  /** Predicts and logs to model_predictions; the id is valid for Feedback on return. */
  predict(query: EnergyQuery): Promise<EnergyPrediction>;
}

/** Dependencies of the predictor. */
export interface PredictorDeps {
  readonly activeModels: ActiveModels;
  readonly cache: ModelCache;
  readonly predictionLog: PredictionLog;
}

/** Builds the predictor. */
export function createPredictor({ activeModels, cache, predictionLog }: PredictorDeps): Predictor {
  async function estimate(query: EnergyQuery): Promise<EnergyEstimate> {
    const model = await activeModels.get(query.userId, "energy_prediction");
    if (model === null) {
      throw new PreconditionFailed(
        `user "${query.userId}" has no active energy_prediction model: store samples with IngestTrainingData, then call Train`,
      );
    }
    const forest = await cache.get(model.model_id);
    const { hour, weekday } = localHourAndWeekday(query.targetTime, query.timeZone);
    const features: EnergyFeatureValues = {
      hour_of_day: hour,
      day_of_week: weekday,
      tasks_completed_today: query.activity.tasksCompletedToday,
      avg_energy_last_7_days: query.activity.avgEnergyLast7Days,
      sleep_quality: query.activity.sleepQuality,
    };
    const probabilities = forest.predictProba(energyFeatureRow(features));
    const top = argmax(probabilities);
    return { energy: ENERGY_LABELS[top]!, probabilities, confidence: probabilities[top]!, features, model };
  }
  return {
    estimate,
    async predict(query) {
      const result = await estimate(query);
      const predictionId = randomUUID();
      await predictionLog.append({
        predictionId,
        modelId: result.model.model_id,
        userId: query.userId,
        type: "energy_prediction",
        value: {
          predicted_energy: result.energy,
          probabilities: Object.fromEntries(ENERGY_LABELS.map((l, i) => [l, result.probabilities[i]])),
          features: result.features,
          target_time: new Date(query.targetTime).toISOString(),
          time_zone: query.timeZone,
          model_version: result.model.version,
        },
        confidence: result.confidence,
      });
      return { ...result, predictionId };
    },
  };
}
