import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import type { DatabasePool } from "slonik";
import { ActivateModelResponseSchema, type MlService } from "../../gen/ml/v1/ml_pb.ts";
import { NotFound } from "../errors.ts";
import { activateModel, type ModelRow } from "../db/models.ts";
import { modelInfo } from "./convert.ts";
import * as v from "./validate.ts";

/** ActivateModel: rolls a user's model back or forward; exactly one version stays active. */
export function createActivateModelHandler({
  db,
  onActivated,
}: {
  db: DatabasePool;
  onActivated: (row: ModelRow) => void;
}): ServiceImpl<typeof MlService>["activateModel"] {
  return async (req) => {
    const modelId = v.uuid(req.modelId, "model_id");
    const row = await activateModel(db, modelId, { trigger: "activate", reason: "activated through the ActivateModel RPC" });
    if (row === null) throw new NotFound(`no model has id ${modelId}`);
    onActivated(row);
    return create(ActivateModelResponseSchema, { model: modelInfo(row) });
  };
}
