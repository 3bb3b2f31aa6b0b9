import { create, toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  EnergyLevel,
  FeedbackRequestSchema,
  IngestTrainingDataRequestSchema,
  PredictRequestSchema,
  SuggestTasksRequestSchema,
  TaskStatus,
  UpsertTasksRequestSchema,
  type FeedbackRequest,
  type IngestTrainingDataRequest,
  type PredictRequest,
  type SuggestTasksRequest,
  type UpsertTasksRequest,
} from "../../gen/ml/v1/ml_pb.ts";
import { syntheticSamples, syntheticUsers } from "../../src/ml/synthetic.ts";
import { sampleMessages } from "../../test/support/fixtures.ts";
import { grpcFrame } from "./framing.ts";

/** The wire protocols the load runs speak. */
export type Protocol = "grpc" | "connect";

/** The URL path of an MlService method, e.g. /ml.v1.MlService/Predict. */
export function methodPath(method: string): string {
  return `/ml.v1.MlService/${method}`;
}

/** A request body as sent on the wire: gRPC length-prefixed, or the bare message for Connect. */
export function encodeBody<D extends DescMessage>(schema: D, message: MessageShape<D>, protocol: Protocol): Buffer {
  const bytes = toBinary(schema, message);
  return protocol === "grpc" ? grpcFrame(bytes) : Buffer.from(bytes);
}

const BASE_TIME = Date.UTC(2026, 10, 26);
const activity = (i: number) => ({ tasksCompletedToday: i % 6, avgEnergyLast7Days: 2, sleepQuality: 0.7 });

/** A Predict for a user at one of many times of day, so the forest sees varied inputs. */
export function predictRequest(userId: string, i = 0): PredictRequest {
  return create(PredictRequestSchema, {
    userId,
    targetTime: timestampFromMs(BASE_TIME + i * 37 * 60_000),
    timeZone: "Europe/Berlin",
    recentActivity: activity(i),
  });
}

/** A SuggestTasks that lets the service predict the energy (the heavier path). */
export function suggestRequest(userId: string, i = 0): SuggestTasksRequest {
  return create(SuggestTasksRequestSchema, { userId, limit: 5, timeZone: "Europe/Berlin", recentActivity: activity(i) });
}

/** A Feedback that confirms a prediction (always valid; it also adds a training sample). */
export function feedbackRequest(predictionId: string): FeedbackRequest {
  return create(FeedbackRequestSchema, { predictionId, wasCorrect: true });
}

/** `count` seeded synthetic samples for one user; the same user index and seed give the same samples. */
export function ingestRequest(userId: string, count: number, seed: number): IngestTrainingDataRequest {
  const [user] = syntheticUsers(1, 1000 + (seed % 97));
  return create(IngestTrainingDataRequestSchema, { samples: sampleMessages(userId, syntheticSamples(user!, count, seed)) });
}

const CATEGORIES = ["deep work", "email", "admin", "planning", "calls"] as const;
const LEVELS = [EnergyLevel.LOW, EnergyLevel.MEDIUM, EnergyLevel.HIGH] as const;

/** `count` open tasks for a user with stable ids (so repeated preparation upserts, not adds). */
export function upsertTasksRequest(userId: string, count: number, userIndex: number): UpsertTasksRequest {
  return create(UpsertTasksRequestSchema, {
    userId,
    tasks: Array.from({ length: count }, (_, i) => ({
      taskId: `00000000-0000-4000-8000-${(userIndex * 100 + i).toString(16).padStart(12, "0")}`,
      title: `Task ${i} of ${userId}`,
      category: CATEGORIES[i % CATEGORIES.length]!,
      energyRequired: LEVELS[i % LEVELS.length]!,
      estimatedMinutes: 15 + 15 * (i % 6),
      priority: 1 + (i % 4),
      status: TaskStatus.OPEN,
      ...(i % 3 === 0 ? { dueAt: timestampFromMs(BASE_TIME + (i + 1) * 86_400_000) } : {}),
    })),
  });
}
