import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import { ListTrainingJobsResponseSchema, type MlService } from "../../gen/ml/v1/ml_pb.ts";
import type { ModelTypeName } from "../domain.ts";
import type { TrainingJob } from "../service/training-queue.ts";
import * as v from "./validate.ts";

/** Reads the job history; absent on the embedded database, where training runs in process. */
export type ListJobs = (userId: string, modelType: ModelTypeName, limit: number) => Promise<readonly TrainingJob[]>;

/** ListTrainingJobs: the queue's history of one model, newest first, so an operator can see what ran, retried or failed. */
export function createListTrainingJobsHandler({ listJobs }: { listJobs: ListJobs | null }): ServiceImpl<typeof MlService>["listTrainingJobs"] {
  return async (req) => {
    const modelType = v.modelType(req.modelType);
    const { userId } = v.modelOwner(req.userId, req.population, modelType);
    const limit = v.limit(req.limit, 50, 500);
    const jobs = listJobs === null ? [] : await listJobs(userId, modelType, limit);
    return create(ListTrainingJobsResponseSchema, {
      jobs: jobs.map((j) => ({
        jobId: j.id,
        trigger: j.trigger,
        state: j.state,
        retries: j.retries,
        createdAt: timestampFromMs(j.createdAt.getTime()),
        ...(j.startedAt === null ? {} : { startedAt: timestampFromMs(j.startedAt.getTime()) }),
        ...(j.finishedAt === null ? {} : { finishedAt: timestampFromMs(j.finishedAt.getTime()) }),
        version: j.version ?? "",
        activated: j.activated,
        outcome: j.outcome,
      })),
    });
  };
}
