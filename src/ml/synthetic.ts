import type { EnergyFeatureValues, EnergyLabel } from "../domain.ts";
import { ENERGY_LABELS } from "../domain.ts";
import { seededRandom } from "./evaluation.ts";

/**
 * Seeded synthetic users with a known energy pattern, for tests, benches and
 * the evaluation harness. The generator exposes its own class probabilities,
 * so the best possible (Bayes) accuracy can be computed exactly.
 *
 * Model: a latent energy score = circadian curve (morning rise, post-lunch
 * dip, evening decline) shifted by the user's chronotype, plus a weekend
 * effect, plus sleep quality, minus fatigue from tasks done today. An ordered
 * logistic turns the score into low/medium/high probabilities, and a share of
 * labels is replaced by a uniformly random level (label noise).
 */

/** One synthetic user's hidden parameters. */
export interface SyntheticUser {
  readonly userId: string;
  /** Hours by which the user's day is shifted (positive = night owl). */
  readonly chronotype: number;
  /** Added to the score on Saturday and Sunday. */
  readonly weekendEffect: number;
  /** How strongly the score decides the level; higher = clearer pattern. */
  readonly sharpness: number;
  /** Share of labels replaced by a random level. */
  readonly labelNoise: number;
  /** For users whose pattern changes (a new job): from this sample index on, the chronotype is `newChronotype`. */
  readonly changeAt?: number;
  readonly newChronotype?: number;
}

/** One generated observation. */
export interface SyntheticSample {
  readonly observedAt: number;
  readonly features: EnergyFeatureValues;
  readonly energy: EnergyLabel;
  /** The generator's own probabilities of low/medium/high for these features. */
  readonly probabilities: readonly [number, number, number];
}

/** A bump on the 24-hour circle: 23:00 and 01:00 are two hours apart, not 22. */
function bump(x: number, centre: number, width: number): number {
  const diff = (((x - centre) % 24) + 24) % 24;
  const distance = Math.min(diff, 24 - diff);
  return Math.exp(-(distance ** 2) / (2 * width * width));
}

/** The latent energy score of a user at given features (roughly -2..2). */
export function latentEnergy(user: SyntheticUser, f: EnergyFeatureValues): number {
  const h = f.hour_of_day - user.chronotype;
  const circadian = 2.2 * bump(h, 10.5, 2.5) + 1.2 * bump(h, 17, 2) - 1.4 * bump(h, 14, 1.2) - 1.5 * bump(h, 23.5, 2.5) - 0.9;
  const weekend = f.day_of_week >= 5 ? user.weekendEffect : 0;
  const sleep = f.sleep_quality === null ? 0 : 1.2 * (f.sleep_quality - 0.6);
  const fatigue = -0.06 * f.tasks_completed_today;
  const baseline = 0.4 * (f.avg_energy_last_7_days - 2);
  return circadian + weekend + sleep + fatigue + baseline;
}

/** The generator's probabilities of low/medium/high (ordered logistic plus label noise). */
export function energyProbabilities(user: SyntheticUser, f: EnergyFeatureValues): [number, number, number] {
  const s = latentEnergy(user, f) * user.sharpness;
  const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
  const cut = 0.6 * user.sharpness;
  const low = sigmoid(-cut - s);
  const high = sigmoid(s - cut);
  const medium = Math.max(0, 1 - low - high);
  const e = user.labelNoise;
  return [(1 - e) * low + e / 3, (1 - e) * medium + e / 3, (1 - e) * high + e / 3];
}

/** A population of users with varied chronotypes. */
export function syntheticUsers(count: number, seed: number, overrides: Partial<Omit<SyntheticUser, "userId">> = {}): SyntheticUser[] {
  const random = seededRandom(seed);
  return Array.from({ length: count }, (_, i) => ({
    userId: `synthetic-${seed}-${i}`,
    chronotype: -2.5 + 6 * random(),
    weekendEffect: -0.5 + random(),
    // With 15% label noise this gives a Bayes-optimal accuracy of about 74%.
    sharpness: 3.7,
    labelNoise: 0.15,
    ...overrides,
  }));
}

/** `count` observations of a user, one every few waking hours, starting at `start`. */
export function syntheticSamples(user: SyntheticUser, count: number, seed: number, start = Date.UTC(2026, 0, 5)): SyntheticSample[] {
  const random = seededRandom(seed);
  const samples: SyntheticSample[] = [];
  let t = start;
  for (let i = 0; i < count; i++) {
    t += Math.floor((3 + random() * 10) * 3_600_000);
    const d = new Date(t);
    const hour = d.getUTCHours();
    const features: EnergyFeatureValues = {
      hour_of_day: hour,
      day_of_week: (d.getUTCDay() + 6) % 7,
      tasks_completed_today: Math.max(0, Math.round(((hour - 8) / 2) * random())),
      avg_energy_last_7_days: Math.round((1.6 + 0.8 * random()) * 100) / 100,
      sleep_quality: random() < 0.3 ? null : Math.round((0.3 + 0.7 * random()) * 100) / 100,
    };
    const changed = user.changeAt !== undefined && i >= user.changeAt && user.newChronotype !== undefined;
    const probabilities = energyProbabilities(changed ? { ...user, chronotype: user.newChronotype! } : user, features);
    const u = random();
    const label = u < probabilities[0] ? 0 : u < probabilities[0] + probabilities[1] ? 1 : 2;
    samples.push({ observedAt: t, features, energy: ENERGY_LABELS[label]!, probabilities });
  }
  return samples;
}
