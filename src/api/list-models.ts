import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import type { DatabasePool } from "slonik";
import { ListModelsResponseSchema, type MlService } from "../../gen/ml/v1/ml_pb.ts";
import { listModels } from "../db/models.ts";
import { modelInfo } from "./convert.ts";
import * as v from "./validate.ts";

/** ListModels: every version of a user's model, newest first. */
export function createListModelsHandler({ db }: { db: DatabasePool }): ServiceImpl<typeof MlService>["listModels"] {
  return async (req) => {
    const modelType = v.modelType(req.modelType);
    const rows = await listModels(db, v.modelOwner(req.userId, req.population, modelType).userId, modelType);
    return create(ListModelsResponseSchema, { models: rows.map(modelInfo) });
  };
}
