import { describe, expect, it } from "vitest";
import { ENERGY_LABELS } from "../src/domain.ts";
import type { SyntheticSample } from "../src/ml/synthetic.ts";
import { FAMILIES, bayesAccuracy, withLabelNoise, withMissingSleep, type Family } from "../eval/families.ts";

const VARIANTS: readonly Family[] = FAMILIES.flatMap((f) => [f, withLabelNoise(f, 0.3), withMissingSleep(f, 0.5)]);

function population(family: Family, users: number, perUser: number, seed = 3): SyntheticSample[] {
  return family.users(users, seed).flatMap((u, i) => family.samples(u, perUser, seed * 1000 + i));
}

describe("synthetic user families", () => {
  it("are the seven families a..g, in order", () => {
    expect(FAMILIES.map((f) => f.name)).toEqual(["chronotype", "level", "shapes", "sleep", "workload", "weekday", "no-signal"]);
  });

  it.each(VARIANTS.map((f) => [f.name, f] as const))("%s: the same seed gives the same users and samples", (_, family) => {
    const a = family.users(3, 9);
    const b = family.users(3, 9);
    expect(a.map((u) => u.userId)).toEqual(b.map((u) => u.userId));
    expect(family.samples(a[1]!, 60, 4)).toEqual(family.samples(b[1]!, 60, 4));
    expect(family.samples(a[1]!, 60, 4)).not.toEqual(family.samples(a[1]!, 60, 5));
  });

  it.each(VARIANTS.map((f) => [f.name, f] as const))("%s: valid features and probabilities, labels drawn from them", (_, family) => {
    const users = family.users(12, 3);
    const samples = users.flatMap((u, i) => {
      const own = family.samples(u, 400, 3000 + i);
      // The reported probabilities are the user's own at the observed features.
      for (const s of own.slice(0, 40)) expect(u.probabilities(s.features)).toEqual(s.probabilities);
      return own;
    });
    let previous = -Infinity;
    for (const s of samples.slice(0, 400)) {
      expect(s.observedAt).toBeGreaterThan(previous);
      previous = s.observedAt;
    }
    for (const s of samples) {
      const p = s.probabilities;
      expect(p.every((x) => x >= 0)).toBe(true);
      expect(Math.abs(p[0] + p[1] + p[2] - 1)).toBeLessThan(1e-9);
      const f = s.features;
      const at = new Date(s.observedAt);
      expect(f.hour_of_day).toBe(at.getUTCHours());
      expect(f.day_of_week).toBe((at.getUTCDay() + 6) % 7);
      expect(Number.isInteger(f.tasks_completed_today) && f.tasks_completed_today >= 0).toBe(true);
      expect(f.avg_energy_last_7_days).toBeGreaterThanOrEqual(1);
      expect(f.avg_energy_last_7_days).toBeLessThanOrEqual(3);
      if (f.sleep_quality !== null) expect(f.sleep_quality >= 0 && f.sleep_quality <= 1).toBe(true);
    }
    // Label frequencies match the mean probabilities (4800 samples: one standard error is under 0.8 points).
    for (let k = 0; k < 3; k++) {
      const frequency = samples.filter((s) => s.energy === ENERGY_LABELS[k]).length / samples.length;
      const expected = samples.reduce((a, s) => a + s.probabilities[k]!, 0) / samples.length;
      expect(Math.abs(frequency - expected)).toBeLessThan(0.03);
    }
    // And sample by sample: predicting the most probable label scores the Bayes accuracy.
    const hits = samples.filter((s) => s.energy === ENERGY_LABELS[s.probabilities.indexOf(Math.max(...s.probabilities))]).length;
    expect(Math.abs(hits / samples.length - bayesAccuracy(samples))).toBeLessThan(0.03);
  });

  it.each(FAMILIES.map((f) => [f.name, f] as const))("%s: 30%% label noise lowers the Bayes accuracy", (_, family) => {
    const clean = bayesAccuracy(population(family, 8, 150));
    const noisy = bayesAccuracy(population(withLabelNoise(family, 0.3), 8, 150));
    expect(noisy).toBeLessThan(clean - 0.02);
  });

  it.each(FAMILIES.map((f) => [f.name, f] as const))("%s: users who never report sleep have no sleep values", (_, family) => {
    const hidden = withMissingSleep(family, 1);
    const samples = population(hidden, 6, 100);
    expect(samples.every((s) => s.features.sleep_quality === null)).toBe(true);
    // Half the users: exactly half of them report no sleep at all.
    const half = withMissingSleep(family, 0.5);
    const silent = half.users(6, 3).filter((u, i) => half.samples(u, 100, i).every((s) => s.features.sleep_quality === null));
    expect(silent.length).toBe(3);
  });

  it("no-signal: the Bayes accuracy is the mean of each user's largest class share", () => {
    const family = FAMILIES[6]!;
    const users = family.users(20, 8);
    const samples = users.flatMap((u, i) => family.samples(u, 300, i));
    const shares = users.map((u) => {
      const p = u.probabilities({ hour_of_day: 9, day_of_week: 0, tasks_completed_today: 0, avg_energy_last_7_days: 2, sleep_quality: null });
      return Math.max(...p);
    });
    const meanShare = shares.reduce((a, b) => a + b, 0) / shares.length;
    expect(bayesAccuracy(samples)).toBeCloseTo(meanShare, 12);
    // The user's most frequent label is what a model should fall back to: it scores about the same.
    const byUser = users.map((_, i) => samples.slice(i * 300, (i + 1) * 300));
    const mostFrequent = byUser.map((own) => Math.max(...ENERGY_LABELS.map((l) => own.filter((s) => s.energy === l).length)) / own.length);
    expect(Math.abs(mostFrequent.reduce((a, b) => a + b, 0) / users.length - meanShare)).toBeLessThan(0.03);
    // Features do not change the probabilities.
    for (const s of samples.slice(0, 300)) expect(s.probabilities).toEqual(samples[0]!.probabilities);
  });
});
