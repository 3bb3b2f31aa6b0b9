import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { TrainResponseSchema, type MlService } from "../../gen/ml/v1/ml_pb.ts";
import { requestIdKey } from "../server/request-id.ts";
import type { Trainer, TrainOutcome } from "../service/trainer.ts";
import { modelInfo } from "./convert.ts";
import * as v from "./validate.ts";

/** Dependencies of Train. */
export interface TrainDeps {
  readonly trainer: Trainer;
  /** Told after a version was fitted and stored (never waits, never throws). */
  readonly onTrained: (outcome: TrainOutcome) => void;
}

/** Train: fits a new version in a worker and reports whether it became active and why. */
export function createTrainHandler({ trainer, onTrained }: TrainDeps): ServiceImpl<typeof MlService>["train"] {
  return async (req, ctx) => {
    const modelType = v.modelType(req.modelType);
    const { userId } = v.modelOwner(req.userId, req.population, modelType);
    const outcome = await trainer.train(userId, modelType, "train", { signal: ctx.signal, requestId: ctx.values.get(requestIdKey) });
    onTrained(outcome);
    return create(TrainResponseSchema, { model: modelInfo(outcome.model), activated: outcome.activated, reason: outcome.reason });
  };
}
