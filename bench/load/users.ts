import { create } from "@bufbuild/protobuf";
import { IngestTrainingDataRequestSchema, ModelType, type EnergySample } from "../../gen/ml/v1/ml_pb.ts";
import type { MlClient } from "./client.ts";
import { progress, requireService, type RunContext } from "./context.ts";
import { ingestRequest, upsertTasksRequest } from "./messages.ts";
import { forEachLimited } from "./pool.ts";

const MAX_SAMPLES_PER_CALL = 10_000;
/** Concurrent Train calls while preparing; the service fits on cores − 1 worker threads anyway. */
const TRAIN_CONCURRENCY = 2;

/** Stores `perUser` synthetic samples for every user, packed into IngestTrainingData calls of up to 10,000. */
export async function ingestForUsers(client: MlClient, userIds: readonly string[], perUser: number): Promise<void> {
  let batch: EnergySample[] = [];
  const flush = async () => {
    if (batch.length === 0) return;
    await client.ingestTrainingData(create(IngestTrainingDataRequestSchema, { samples: batch }));
    batch = [];
  };
  for (const [i, userId] of userIds.entries()) {
    if (batch.length + perUser > MAX_SAMPLES_PER_CALL) await flush();
    batch.push(...ingestRequest(userId, perUser, i).samples);
  }
  await flush();
}

/** Calls Train for every user, a few at a time, printing progress every 10%. */
export async function trainUsers(client: MlClient, userIds: readonly string[], label: string): Promise<void> {
  const step = Math.max(1, Math.floor(userIds.length / 10));
  let done = 0;
  await forEachLimited(userIds.length, TRAIN_CONCURRENCY, async (i) => {
    await client.train({ userId: userIds[i]!, modelType: ModelType.ENERGY_PREDICTION });
    if (++done % step === 0) progress(`${label}: trained ${done}/${userIds.length}`);
  });
}

/**
 * The warm users every scenario uses: ~60 synthetic samples each, a trained
 * and active model, and ~10 open tasks (for SuggestTasks).
 */
export async function prepareWarmUsers(ctx: RunContext): Promise<string[]> {
  const { client } = requireService(ctx, "warm users");
  const started = performance.now();
  const userIds = Array.from({ length: ctx.options.warmUsers }, (_, i) => `load-${ctx.tag}-warm-${i}`);
  progress(`preparing ${userIds.length} warm users (ingest 60 samples, Train, UpsertTasks 10 tasks each)`);
  await ingestForUsers(client, userIds, 60);
  await trainUsers(client, userIds, "warm users");
  await forEachLimited(userIds.length, 8, async (i) => {
    await client.upsertTasks(upsertTasksRequest(userIds[i]!, 10, i));
  });
  ctx.details["warmUsers"] = { count: userIds.length, samplesEach: 60, tasksEach: 10, prepareS: (performance.now() - started) / 1000 };
  progress(`warm users ready in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return userIds;
}
