import { create, toBinary } from "@bufbuild/protobuf";
import { EnergyLevel, PredictResponseSchema, type PredictResponse } from "../../gen/ml/v1/ml_pb.ts";

/** A Predict-shaped answer of realistic size, so baselines send what the service sends. */
export function cannedPredictResponse(): PredictResponse {
  return create(PredictResponseSchema, {
    predictionId: "5b0c6f3e-8d7a-4c21-9f1e-2a3b4c5d6e7f",
    predictedEnergy: EnergyLevel.HIGH,
    confidence: 0.61,
    probabilities: [
      { level: EnergyLevel.LOW, probability: 0.08 },
      { level: EnergyLevel.MEDIUM, probability: 0.31 },
      { level: EnergyLevel.HIGH, probability: 0.61 },
    ],
    recommendedTaskTypes: ["deep work", "planning", "creative"],
    modelId: "0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6",
    modelVersion: "v1",
  });
}

/** The canned answer encoded once, for the raw HTTP/2 baseline. */
export function cannedPredictBytes(): Uint8Array {
  return toBinary(PredictResponseSchema, cannedPredictResponse());
}
