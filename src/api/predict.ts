import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { PredictResponseSchema, type MlService } from "../../gen/ml/v1/ml_pb.ts";
import { ENERGY_LABELS } from "../domain.ts";
import { RECOMMENDED_TASK_TYPES } from "../ml/task-ranking.ts";
import type { Predictor } from "../service/predictor.ts";
import { energyLevel, modelSource } from "./convert.ts";
import * as v from "./validate.ts";

/** Predict: the user's energy at target_time in their zone, logged for Feedback; always answers (user, population or prior). */
export function createPredictHandler({ predictor }: { predictor: Predictor }): ServiceImpl<typeof MlService>["predict"] {
  return async (req) => {
    const query = {
      userId: v.userId(req.userId),
      targetTime: v.timestamp(req.targetTime, "target_time"),
      timeZone: v.timeZone(req.timeZone),
      activity: v.recentActivity(req.recentActivity, "recent_activity", true),
    };
    const p = await predictor.predict(query);
    return create(PredictResponseSchema, {
      predictionId: p.predictionId,
      predictedEnergy: energyLevel(p.energy),
      confidence: p.confidence,
      probabilities: ENERGY_LABELS.map((label, i) => ({ level: energyLevel(label), probability: p.probabilities[i] ?? 0 })),
      recommendedTaskTypes: [...RECOMMENDED_TASK_TYPES[p.energy]],
      modelId: p.model?.model_id ?? "",
      modelVersion: p.model?.version ?? "",
      modelSource: modelSource(p.source),
    });
  };
}
