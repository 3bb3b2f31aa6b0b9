import { randomUUID } from "node:crypto";
import type { DatabasePool } from "slonik";
import { ENERGY_LABELS, type EnergyFeatureValues, type EnergyLabel } from "../domain.ts";
import { PreconditionFailed } from "../errors.ts";
import { activeModel, type ModelRow } from "../db/models.ts";
import { insertPrediction } from "../db/predictions.ts";
import { argmax } from "../ml/evaluation.ts";
import { energyFeatureRow, localHourAndWeekday } from "../ml/features.ts";
import type { ModelCache } from "./model-cache.ts";

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
  readonly db: DatabasePool;
  readonly cache: ModelCache;
}

/** Builds the predictor. */
export function createPredictor({ db, cache }: PredictorDeps): Predictor {
  async function estimate(query: EnergyQuery): Promise<EnergyEstimate> {
    const model = await activeModel(db, query.userId, "energy_prediction");
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
      await insertPrediction(db, {
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
