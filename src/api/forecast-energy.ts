import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import { ForecastEnergyResponseSchema, type MlService } from "../../gen/ml/v1/ml_pb.ts";
import { ENERGY_LABELS } from "../domain.ts";
import { InvalidInput } from "../errors.ts";
import { bestWindows } from "../ml/schedule.ts";
import type { Predictor } from "../service/predictor.ts";
import { energyLevel, modelSource } from "./convert.ts";
import * as v from "./validate.ts";

/** Longest forecast: one week of hours. */
export const MAX_FORECAST_HOURS = 168;
const HOUR = 3_600_000;

/** ForecastEnergy: the energy distribution hour by hour and the best windows for demanding work. */
export function createForecastEnergyHandler({ predictor }: { predictor: Predictor }): ServiceImpl<typeof MlService>["forecastEnergy"] {
  return async (req) => {
    const userId = v.userId(req.userId);
    const from = Math.floor(v.timestamp(req.from, "from") / HOUR) * HOUR;
    if (req.hours < 1 || req.hours > MAX_FORECAST_HOURS) throw new InvalidInput("hours", `${req.hours} is outside 1-${MAX_FORECAST_HOURS}`);
    const timeZone = v.timeZone(req.timeZone);
    const activity = v.recentActivity(req.recentActivity, "recent_activity", false);
    const times = Array.from({ length: req.hours }, (_, i) => from + i * HOUR);
    const estimates = await predictor.estimateMany(userId, times, timeZone, activity);
    const windows = bestWindows(estimates.map((e) => e.probabilities[2] ?? 0));
    const first = estimates[0]!;
    return create(ForecastEnergyResponseSchema, {
      hours: estimates.map((e, i) => ({
        start: timestampFromMs(times[i]!),
        predictedEnergy: energyLevel(e.energy),
        probabilities: ENERGY_LABELS.map((label, k) => ({ level: energyLevel(label), probability: e.probabilities[k] ?? 0 })),
      })),
      bestWindows: windows.map((w) => ({
        start: timestampFromMs(times[w.start]!),
        end: timestampFromMs(times[w.start]! + w.length * HOUR),
        meanHighProbability: w.meanHigh,
      })),
      modelSource: modelSource(first.source),
      modelId: first.model?.model_id ?? "",
      modelVersion: first.model?.version ?? "",
    });
  };
}
