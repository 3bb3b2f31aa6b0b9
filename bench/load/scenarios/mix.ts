import { FeedbackRequestSchema, IngestTrainingDataRequestSchema, PredictRequestSchema, SuggestTasksRequestSchema } from "../../../gen/ml/v1/ml_pb.ts";
import { exitSignal, progress, requireService, serviceAlive, serviceExit, type RunContext } from "../context.ts";
import { createPredictionIds } from "../feedback-ids.ts";
import { generateLoad, type LoadRequest } from "../generator.ts";
import { generatorRow } from "../generator-row.ts";
import { measureWindow, settledPredictionCount } from "../measure.ts";
import { encodeBody, feedbackRequest, ingestRequest, methodPath, predictRequest, suggestRequest } from "../messages.ts";

/** Out of every 20 calls: 16 Predict, 2 SuggestTasks, 1 Feedback, 1 IngestTrainingData (80/10/5/5). */
const PATTERN = [...Array<string>(16).fill("Predict"), "SuggestTasks", "SuggestTasks", "Feedback", "IngestTrainingData"] as const;
const INGEST_SAMPLES = 5;
const VARIANTS = 8;

/**
 * mix: 80% Predict, 10% SuggestTasks, 5% Feedback, 5% IngestTrainingData
 * over the warm users, with the node:http2 generator (h2load sends one body
 * per process, so it cannot interleave methods on the same streams).
 */
export async function runMix(ctx: RunContext): Promise<void> {
  const { service, db, pid } = requireService(ctx, "mix");
  const { duration, warmup, connections, streams } = ctx.options;
  const users = ctx.warmUsers;
  const expectedCalls = (ctx.maxPredictPerS ?? 500) * (duration + warmup) * 1.2;
  const wanted = Math.min(20_000, Math.max(200, Math.ceil(expectedCalls / PATTERN.length)));
  progress(`mix: creating ${wanted} prediction ids for Feedback`);
  const ids = await createPredictionIds(service.port, users, wanted);
  const encode = {
    Predict: users.flatMap((u, i) => Array.from({ length: VARIANTS }, (_, v) => encodeBody(PredictRequestSchema, predictRequest(u, i + v), "grpc"))),
    SuggestTasks: users.map((u, i) => encodeBody(SuggestTasksRequestSchema, suggestRequest(u, i), "grpc")),
    IngestTrainingData: users.map((u, i) => encodeBody(IngestTrainingDataRequestSchema, ingestRequest(u, INGEST_SAMPLES, 500 + i), "grpc")),
  };
  let feedbacks = 0;
  const next = (n: number): LoadRequest => {
    const kind = PATTERN[n % PATTERN.length]!;
    const round = Math.floor(n / PATTERN.length);
    if (kind === "Feedback") {
      const id = ids[feedbacks++ % ids.length]!;
      return { kind, path: methodPath(kind), body: encodeBody(FeedbackRequestSchema, feedbackRequest(id), "grpc") };
    }
    const bodies = encode[kind as keyof typeof encode];
    return { kind, path: methodPath(kind), body: bodies[(n + round) % bodies.length]! };
  };
  const before = await settledPredictionCount(db, true);
  const run = await measureWindow(pid, db, warmup, () =>
    generateLoad({ port: service.port, protocol: "grpc", connections, streams, warmupS: warmup, durationS: duration, next, signal: exitSignal(service) }),
  );
  if (!serviceAlive(service)) throw new Error(`mix: ${serviceExit(service)}`);
  const after = await settledPredictionCount(db, true);
  const reused = Math.max(0, feedbacks - ids.length);
  ctx.rows.push(
    generatorRow("mix", `node:http2 generator ${connections} conn × ${streams} streams, gRPC`, run, ctx.rawCallsPerS, { before, after }, [
      `calls interleaved 16 Predict : 2 SuggestTasks : 1 Feedback : 1 IngestTrainingData (${INGEST_SAMPLES} samples) over ${users.length} warm users`,
      `Feedback used ${Math.min(feedbacks, ids.length)} fresh prediction ids made before the run` +
        (reused > 0 ? `; ${reused} more reused an id (same answer again: a no-op)` : ""),
      "IngestTrainingData and Feedback add training samples, so the service retrains in the background during this run (default RETRAIN_AFTER_SAMPLES=20)",
    ]),
  );
}
