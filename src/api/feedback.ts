import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { FeedbackResponseSchema, type MlService } from "../../gen/ml/v1/ml_pb.ts";
import { requestIdKey } from "../server/request-id.ts";
import type { FeedbackRecorder } from "../service/feedback.ts";
import * as v from "./validate.ts";

/** Feedback: stores the answer, updates live accuracy, and may schedule a background retrain. */
export function createFeedbackHandler({ feedback }: { feedback: FeedbackRecorder }): ServiceImpl<typeof MlService>["feedback"] {
  return async (req, ctx) => {
    const outcome = await feedback.record(
      {
        predictionId: v.uuid(req.predictionId, "prediction_id"),
        wasCorrect: req.wasCorrect,
        actualEnergy: req.actualEnergy === undefined ? null : v.energy(req.actualEnergy, "actual_energy"),
        chosenTaskId: req.chosenTaskId === undefined ? null : v.uuid(req.chosenTaskId, "chosen_task_id"),
      },
      { requestId: ctx.values.get(requestIdKey) },
    );
    return create(FeedbackResponseSchema, outcome);
  };
}
