import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { EnergyLevel, EnergySampleSchema, type EnergySample } from "../../gen/ml/v1/ml_pb.ts";
import { syntheticSamples, syntheticUsers, type SyntheticSample, type SyntheticUser } from "../../src/ml/synthetic.ts";

/** A user whose energy follows the clock closely: the "clear daily pattern" of the spec's acceptance test. */
export function clearPatternUser(index = 0, seed = 11): SyntheticUser {
  return syntheticUsers(index + 1, seed, { sharpness: 8, labelNoise: 0 })[index]!;
}

const LEVELS = { low: EnergyLevel.LOW, medium: EnergyLevel.MEDIUM, high: EnergyLevel.HIGH } as const;

/** Synthetic samples as API messages for IngestTrainingData. */
export function sampleMessages(userId: string, samples: readonly SyntheticSample[]): EnergySample[] {
  return samples.map((s) =>
    create(EnergySampleSchema, {
      userId,
      observedAt: timestampFromMs(s.observedAt),
      features: {
        hourOfDay: s.features.hour_of_day,
        dayOfWeek: s.features.day_of_week,
        tasksCompletedToday: s.features.tasks_completed_today,
        avgEnergyLast7Days: s.features.avg_energy_last_7_days,
        ...(s.features.sleep_quality === null ? {} : { sleepQuality: s.features.sleep_quality }),
      },
      energy: LEVELS[s.energy],
    }),
  );
}

/** `count` API samples of a clear-pattern user. */
export function clearPatternMessages(userId: string, count: number, seed = 5): EnergySample[] {
  return sampleMessages(userId, syntheticSamples(clearPatternUser(), count, seed));
}
