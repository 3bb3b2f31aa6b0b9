import { fromBinary } from "@bufbuild/protobuf";
import { PredictRequestSchema, PredictResponseSchema } from "../../gen/ml/v1/ml_pb.ts";
import { generateLoad } from "./generator.ts";
import { encodeBody, methodPath, predictRequest } from "./messages.ts";

/**
 * Fresh prediction ids for Feedback, made with Predict calls before a run
 * (each id can be answered once; a repeat of the same answer is a no-op).
 * Bounded by count and by 60 s.
 */
export async function createPredictionIds(port: number, users: readonly string[], count: number): Promise<string[]> {
  const ids: string[] = [];
  const bodies = users.map((u, i) => encodeBody(PredictRequestSchema, predictRequest(u, i), "grpc"));
  await generateLoad({
    port,
    protocol: "grpc",
    connections: 2,
    streams: 16,
    warmupS: 0,
    durationS: 60,
    maxCalls: count,
    next: (n) => ({ kind: "Predict", path: methodPath("Predict"), body: bodies[n % bodies.length]! }),
    onMessage: (_kind, message) => ids.push(fromBinary(PredictResponseSchema, message).predictionId),
  });
  return ids;
}
