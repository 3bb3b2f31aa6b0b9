import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { EnergyLevel, ModelType } from "../gen/ml/v1/ml_pb.ts";
import { syntheticSamples, type SyntheticSample, type SyntheticUser } from "../src/ml/synthetic.ts";
import { sampleMessages } from "../test/support/fixtures.ts";
import type { TestService } from "../test/support/service.ts";

const LEVEL = { low: EnergyLevel.LOW, medium: EnergyLevel.MEDIUM, high: EnergyLevel.HIGH } as const;

/** One shifting user's recovery. */
export interface RecoveryResult {
  readonly userId: string;
  readonly preShiftAccuracy: number;
  /** Accuracy of the active model on fresh post-shift samples after k feedbacks. */
  readonly curve: readonly { feedbacks: number; accuracy: number }[];
  /** Feedbacks until accuracy was back within 3 points of the pre-shift level (null: not within the run). */
  readonly recoveredAfter: number | null;
  /** Triggers of the retrains that activated a version after the shift. */
  readonly triggers: readonly string[];
}

async function accuracyOn(s: TestService, userId: string, samples: readonly SyntheticSample[]): Promise<number> {
  let hits = 0;
  for (const x of samples) {
    const p = await s.client.predict({
      userId,
      targetTime: timestampFromMs(x.observedAt),
      recentActivity: {
        tasksCompletedToday: x.features.tasks_completed_today,
        avgEnergyLast7Days: x.features.avg_energy_last_7_days,
        ...(x.features.sleep_quality === null ? {} : { sleepQuality: x.features.sleep_quality }),
      },
    });
    if (p.predictedEnergy === LEVEL[x.energy]) hits++;
  }
  return hits / samples.length;
}

/**
 * A user whose day moves (a new job) after `before` samples: train on the
 * old pattern, then stream Predict + Feedback with the new one, and measure
 * the active model on fresh post-shift samples every `step` feedbacks.
 * Everything goes through the service's RPCs; no timer retrains anything.
 */
export async function shiftRecovery(
  s: TestService,
  user: SyntheticUser,
  options: { before: number; feedbacks: number; step: number; testSize: number; seed: number },
): Promise<RecoveryResult> {
  const stream = syntheticSamples({ ...user, changeAt: options.before }, options.before + options.feedbacks, options.seed);
  await s.client.ingestTrainingData({ samples: sampleMessages(user.userId, stream.slice(0, options.before)) });
  await s.client.train({ userId: user.userId, modelType: ModelType.ENERGY_PREDICTION });
  const after = stream.at(-1)!.observedAt;
  const preTest = syntheticSamples(user, options.testSize, options.seed + 1, Date.UTC(2026, 0, 5));
  const postTest = syntheticSamples({ ...user, chronotype: user.newChronotype! }, options.testSize, options.seed + 2, after);
  const preShiftAccuracy = await accuracyOn(s, user.userId, preTest);
  const curve: { feedbacks: number; accuracy: number }[] = [{ feedbacks: 0, accuracy: await accuracyOn(s, user.userId, postTest) }];
  for (let k = 1; k <= options.feedbacks; k++) {
    const x = stream[options.before + k - 1]!;
    const p = await s.client.predict({
      userId: user.userId,
      targetTime: timestampFromMs(x.observedAt),
      recentActivity: {
        tasksCompletedToday: x.features.tasks_completed_today,
        avgEnergyLast7Days: x.features.avg_energy_last_7_days,
        ...(x.features.sleep_quality === null ? {} : { sleepQuality: x.features.sleep_quality }),
      },
    });
    const actual = LEVEL[x.energy];
    await s.client.feedback({ predictionId: p.predictionId, wasCorrect: actual === p.predictedEnergy, actualEnergy: actual });
    if (k % options.step === 0) {
      await s.app.trainer.idle();
      curve.push({ feedbacks: k, accuracy: await accuracyOn(s, user.userId, postTest) });
    }
  }
  const recovered = curve.find((c) => c.accuracy >= preShiftAccuracy - 0.03);
  const log = await s.client.listActivations({ userId: user.userId, modelType: ModelType.ENERGY_PREDICTION });
  const triggers = log.activations
    .filter((a) => a.activated && a.trigger !== "train")
    .map((a) => a.trigger)
    .reverse();
  return { userId: user.userId, preShiftAccuracy, curve, recoveredAfter: recovered?.feedbacks ?? null, triggers };
}
