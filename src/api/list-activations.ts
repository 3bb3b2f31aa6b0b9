import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import type { DatabasePool } from "slonik";
import { ListActivationsResponseSchema, type MlService } from "../../gen/ml/v1/ml_pb.ts";
import { listActivations } from "../db/models.ts";
import * as v from "./validate.ts";

/** ListActivations: the activation log, newest first, so anyone can see why a version serves. */
export function createListActivationsHandler({ db }: { db: DatabasePool }): ServiceImpl<typeof MlService>["listActivations"] {
  return async (req) => {
    const modelType = v.modelType(req.modelType);
    const { userId } = v.modelOwner(req.userId, req.population, modelType);
    const limit = v.limit(req.limit, 50, 500);
    const rows = await listActivations(db, userId, modelType, limit);
    return create(ListActivationsResponseSchema, {
      activations: rows.map((r) => ({
        modelId: r.model_id,
        version: r.version,
        activated: r.activated,
        trigger: r.trigger,
        reason: r.reason,
        at: timestampFromMs(r.created_at),
      })),
    });
  };
}
