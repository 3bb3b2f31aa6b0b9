import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import type { DatabasePool } from "slonik";
import { IngestTrainingDataResponseSchema, type MlService } from "../../gen/ml/v1/ml_pb.ts";
import { InvalidInput } from "../errors.ts";
import { insertTrainingSamples, type NewTrainingSample } from "../db/training-data.ts";
import * as v from "./validate.ts";

/** Largest batch one call may store. */
export const MAX_INGEST_BATCH = 10_000;

/** Dependencies of IngestTrainingData. */
export interface IngestTrainingDataDeps {
  readonly db: DatabasePool;
  /** Told after a batch is stored, so the population model can refit itself (never waits, never throws). */
  readonly onSamplesStored: (stored: number) => void;
}

/** IngestTrainingData: validates the whole batch first, then stores it in one statement (all or nothing). */
export function createIngestTrainingDataHandler({ db, onSamplesStored }: IngestTrainingDataDeps): ServiceImpl<typeof MlService>["ingestTrainingData"] {
  return async (req) => {
    if (req.samples.length === 0) throw new InvalidInput("samples", "is empty");
    if (req.samples.length > MAX_INGEST_BATCH) {
      throw new InvalidInput("samples", `has ${req.samples.length} samples; at most ${MAX_INGEST_BATCH} per call`);
    }
    const rows = req.samples.map((s, i): NewTrainingSample => {
      const at = `samples[${i}]`;
      const f = s.features;
      if (f === undefined) throw new InvalidInput(`${at}.features`, "is required");
      return {
        userId: v.userId(s.userId, `${at}.user_id`),
        modelType: "energy_prediction",
        features: {
          hour_of_day: v.inRange(f.hourOfDay, 0, 23, `${at}.features.hour_of_day`),
          day_of_week: v.inRange(f.dayOfWeek, 0, 6, `${at}.features.day_of_week`),
          tasks_completed_today: v.inRange(f.tasksCompletedToday, 0, 1000, `${at}.features.tasks_completed_today`),
          avg_energy_last_7_days: v.inRange(f.avgEnergyLast7Days, 1, 3, `${at}.features.avg_energy_last_7_days`),
          sleep_quality: f.sleepQuality === undefined ? null : v.inRange(f.sleepQuality, 0, 1, `${at}.features.sleep_quality`),
        },
        label: v.energy(s.energy, `${at}.energy`),
        source: "ingest",
        predictionId: null,
        observedAt: v.timestamp(s.observedAt, `${at}.observed_at`),
      };
    });
    const stored = await insertTrainingSamples(db, rows);
    onSamplesStored(stored);
    return create(IngestTrainingDataResponseSchema, { stored });
  };
}
