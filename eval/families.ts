/**
 * Families of synthetic users for the evaluation harness, written without
 * looking at the service's model: each family makes energy depend on the
 * features in a different STRUCTURE (and through a different link function),
 * so a model that only fits the service's own assumptions shows it.
 *
 *   (a) chronotype  shared day shape shifted per user (src/ml/synthetic.ts), ordered logistic
 *   (b) level       mostly the user's overall level, tracked by the 7-day mean; ordered probit
 *   (c) shapes      unusual day shapes (night, split, flat, two peaks); softmax over three scores
 *   (d) sleep       last night's sleep through a per-user interpolated table
 *   (e) workload    fatigue from tasks done today and hours awake; continuation-ratio logit
 *   (f) weekday     a per-user weekly pattern; Gaussian kernel over the level per weekday
 *   (g) no-signal   a fixed label distribution per user, independent of every feature
 *
 * Exactness: every observation's features are drawn first, its probabilities
 * are then the user's `probabilities(features)` and its label is drawn from
 * exactly those. Where a feature the energy depends on is hidden (sleep quality
 * not reported), `probabilities` marginalises over the user's own sleep
 * distribution, so the reported probabilities are the true conditional given
 * what the features show and the Bayes accuracy is exact.
 */
import type { EnergyFeatureValues } from "../src/domain.ts";
import { ENERGY_LABELS } from "../src/domain.ts";
import { seededRandom } from "../src/ml/evaluation.ts";
import { energyProbabilities, syntheticSamples, syntheticUsers, type SyntheticSample, type SyntheticUser } from "../src/ml/synthetic.ts";

type Triple = readonly [number, number, number];

/** A synthetic user as the harness sees it: only the truth needed to score against, no hidden parameters. */
export interface FamilyUser {
  readonly userId: string;
  /** The true P(low, medium, high) at features f (after noise). */
  probabilities(f: EnergyFeatureValues): readonly [number, number, number];
}

/** One way energy can depend on the features, so results can be compared across structurally different users. */
export interface Family {
  readonly name: string;
  readonly description: string;
  /** `count` users, deterministic from seed. */
  users(count: number, seed: number): FamilyUser[];
  /** `count` observations of one user in time order from `start` (ms), deterministic from seed; each sample's label drawn from its probabilities. */
  samples(user: FamilyUser, count: number, seed: number, start?: number): SyntheticSample[];
}

const DEFAULT_START = Date.UTC(2026, 0, 5); // a Monday, as in src/ml/synthetic.ts
const HOUR = 3_600_000;

// ---------------------------------------------------------------- helpers

function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

function mixSeed(seed: number, salt: string): number {
  return (Math.imul(seed >>> 0, 0x9e3779b1) ^ hashString(salt)) >>> 0;
}

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
const clamp = (x: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, x));
const round2 = (x: number) => Math.round(x * 100) / 100;
const uniform = (random: () => number, lo: number, hi: number) => lo + (hi - lo) * random();

function normal(random: () => number): number {
  const u = Math.max(random(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
}

function poisson(random: () => number, lambda: number): number {
  if (lambda <= 0) return 0;
  const limit = Math.exp(-lambda);
  let k = 0;
  let p = random();
  while (p > limit) {
    k++;
    p *= random();
  }
  return k;
}

/** Standard normal CDF (Abramowitz-Stegun 7.1.26 on erf; error below 2e-7, and callers renormalise). */
function phi(x: number): number {
  const z = Math.abs(x) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * z);
  const erf = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-z * z);
  return x >= 0 ? 0.5 * (1 + erf) : 0.5 * (1 - erf);
}

function normalise(p: readonly number[]): Triple {
  const a = Math.max(0, p[0]!);
  const b = Math.max(0, p[1]!);
  const c = Math.max(0, p[2]!);
  const s = a + b + c;
  return [a / s, b / s, c / s];
}

function softmax(s: readonly [number, number, number]): Triple {
  const m = Math.max(...s);
  return normalise(s.map((x) => Math.exp(x - m)));
}

/** Hours from `from` forward to `to` on the 24-hour circle (0..24). */
const hoursAfter = (to: number, from: number) => (((to - from) % 24) + 24) % 24;

/** A bump on the 24-hour circle: 23:00 and 01:00 are two hours apart. */
function bump(x: number, centre: number, width: number): number {
  const d = hoursAfter(x, centre);
  const distance = Math.min(d, 24 - d);
  return Math.exp(-(distance ** 2) / (2 * width * width));
}

function drawLabel(random: () => number, p: Triple): number {
  const u = random();
  return u < p[0] ? 0 : u < p[0] + p[1] ? 1 : 2;
}

// ---------------------------------------------------------------- habits and the shared sampler

/** Sleep quality grid: reported values are rounded to 0.01, so the marginal over this grid is exact. */
const SLEEP_GRID = Array.from({ length: 101 }, (_, i) => i / 100);

/** How a user lives: when they are awake, how much they get done, how they sleep, what their 7-day mean hovers around. */
interface Habits {
  /** Local hour of waking (fractional). */
  readonly wake: number;
  readonly awakeHours: number;
  /** Tasks completed per working hour on an average day. */
  readonly taskRate: number;
  /** P(a night's sleep quality is reported); the whole day's observations share it. */
  readonly sleepReportRate: number;
  /** Weights of SLEEP_GRID: the user's distribution of a night's sleep quality. */
  readonly sleepWeights: readonly number[];
  readonly sleepMean: number;
  /** What avg_energy_last_7_days hovers around: the user's long-run mean energy (1..3). */
  readonly meanEnergy: number;
}

function sleepWeights(mean: number, sd: number): number[] {
  const w = SLEEP_GRID.map((s) => Math.exp(-((s - mean) ** 2) / (2 * sd * sd)));
  const total = w.reduce((a, b) => a + b, 0);
  return w.map((x) => x / total);
}

function drawHabits(random: () => number, routine: { wake: number; awakeHours: number }): Habits {
  const sleepMean = uniform(random, 0.45, 0.8);
  const weights = sleepWeights(sleepMean, uniform(random, 0.1, 0.22));
  return {
    ...routine,
    taskRate: uniform(random, 0.25, 0.9),
    sleepReportRate: uniform(random, 0.7, 0.95),
    sleepWeights: weights,
    sleepMean: SLEEP_GRID.reduce((a, s, i) => a + s * weights[i]!, 0),
    meanEnergy: 2,
  };
}

/** The user's energy at features f with a known sleep value; the family's structure lives here. */
type Conditional = (f: EnergyFeatureValues, sleep: number) => Triple;

/** P(label | features): the conditional when sleep is reported, its mean over the user's sleep distribution when not. */
function marginalOverSleep(habits: Habits, f: EnergyFeatureValues, conditional: Conditional): Triple {
  if (f.sleep_quality !== null) return conditional(f, f.sleep_quality);
  const sum: [number, number, number] = [0, 0, 0];
  for (let i = 0; i < SLEEP_GRID.length; i++) {
    const w = habits.sleepWeights[i]!;
    if (w < 1e-9) continue;
    const p = conditional(f, SLEEP_GRID[i]!);
    sum[0] += w * p[0];
    sum[1] += w * p[1];
    sum[2] += w * p[2];
  }
  return normalise(sum);
}

function drawSleep(random: () => number, weights: readonly number[]): number {
  let u = random();
  for (let i = 0; i < weights.length; i++) {
    u -= weights[i]!;
    if (u <= 0) return SLEEP_GRID[i]!;
  }
  return SLEEP_GRID[SLEEP_GRID.length - 1]!;
}

/** A user of one of the families (b)-(g): habits for the sampler plus the family's probabilities. */
interface HabitUser extends FamilyUser {
  readonly habits: Habits;
}

/**
 * Observations of a user at irregular times (2-14 h apart), mostly while they
 * are awake: an observation that would fall in their sleep moves (90% of the
 * time) to shortly after their next waking. A "day" runs from waking to
 * waking, so a night worker's tasks and sleep belong to their own shift.
 */
function habitSamples(user: HabitUser, count: number, seed: number, start: number): SyntheticSample[] {
  const h = user.habits;
  const random = seededRandom(mixSeed(seed, user.userId));
  const samples: SyntheticSample[] = [];
  let t = start;
  let day = Number.NaN;
  let sleep: number | null = null;
  let dayRate = 0;
  let tasks = 0;
  let workedHours = 0;
  let drift = 0.2 * normal(random);
  for (let i = 0; i < count; i++) {
    t += Math.round((2 + 12 * random() ** 1.4) * HOUR);
    let sinceWake = hoursAfter(t / HOUR, h.wake);
    if (sinceWake >= h.awakeHours && random() < 0.9) t += Math.round((24 - sinceWake + uniform(random, 0.2, 2.5)) * HOUR);
    const absolute = t / HOUR - h.wake;
    const thisDay = Math.floor(absolute / 24);
    sinceWake = absolute - 24 * thisDay;
    if (thisDay !== day) {
      // Advance the 7-day mean's slow drift by the days that passed.
      const steps = Number.isNaN(day) ? 1 : Math.min(30, thisDay - day);
      for (let k = 0; k < steps; k++) drift = 0.85 * drift + 0.12 * normal(random);
      day = thisDay;
      const night = drawSleep(random, h.sleepWeights);
      sleep = random() < h.sleepReportRate ? night : null;
      dayRate = h.taskRate * Math.exp(clamp(0.4 * normal(random), -0.9, 0.9));
      tasks = 0;
      workedHours = 0;
    }
    // Tasks get done over a working stretch of up to 10 hours, starting an hour after waking.
    const working = clamp(sinceWake - 1, 0, Math.min(10, h.awakeHours - 3));
    if (working > workedHours) {
      tasks += poisson(random, dayRate * (working - workedHours));
      workedHours = working;
    }
    const d = new Date(t);
    const features: EnergyFeatureValues = {
      hour_of_day: d.getUTCHours(),
      day_of_week: (d.getUTCDay() + 6) % 7,
      tasks_completed_today: tasks,
      avg_energy_last_7_days: round2(clamp(h.meanEnergy + drift, 1, 3)),
      sleep_quality: sleep,
    };
    const probabilities = user.probabilities(features);
    samples.push({ observedAt: t, features, energy: ENERGY_LABELS[drawLabel(random, probabilities)]!, probabilities });
  }
  return samples;
}

/** The user's long-run mean energy under their own habits, for avg_energy_last_7_days (families whose energy does not depend on it). */
function longRunMean(user: HabitUser): number {
  const samples = habitSamples(user, 300, 7, DEFAULT_START);
  return samples.reduce((a, s) => a + 1 + s.probabilities[1] + 2 * s.probabilities[2], 0) / samples.length;
}

/** Builds a family of habit users: `make` draws one user's habits and their conditional energy. */
function habitFamily(
  name: string,
  description: string,
  make: (random: () => number) => { habits: Habits; probabilities: (f: EnergyFeatureValues, habits: Habits) => Triple; meanEnergy?: number },
): Family {
  const owned = new WeakSet<FamilyUser>();
  const build = (userId: string, habits: Habits, p: (f: EnergyFeatureValues, habits: Habits) => Triple): HabitUser => {
    const user: HabitUser = { userId, habits, probabilities: (f) => p(f, habits) };
    owned.add(user);
    return user;
  };
  return {
    name,
    description,
    users(count, seed) {
      const random = seededRandom(mixSeed(seed, name));
      return Array.from({ length: count }, (_, i) => {
        const userId = `${name}-${seed}-${i}`;
        const made = make(random);
        const meanEnergy = made.meanEnergy ?? longRunMean(build(userId, made.habits, made.probabilities));
        return build(userId, { ...made.habits, meanEnergy }, made.probabilities);
      });
    },
    samples(user, count, seed, start = DEFAULT_START) {
      if (!owned.has(user)) throw new Error(`user ${user.userId} does not belong to family ${name}`);
      return habitSamples(user as HabitUser, count, seed, start);
    },
  };
}

const dayRoutine = (random: () => number) => ({ wake: uniform(random, 5.5, 9), awakeHours: uniform(random, 14.5, 17) });

// ---------------------------------------------------------------- (a) chronotype

function chronotypeFamily(): Family {
  const inner = new WeakMap<FamilyUser, SyntheticUser>();
  return {
    name: "chronotype",
    description: "shared day shape shifted by each user's chronotype, ordered logistic (src/ml/synthetic.ts)",
    users(count, seed) {
      return syntheticUsers(count, seed).map((u) => {
        const user: FamilyUser = { userId: u.userId, probabilities: (f) => energyProbabilities(u, f) };
        inner.set(user, u);
        return user;
      });
    },
    samples(user, count, seed, start = DEFAULT_START) {
      const u = inner.get(user);
      if (u === undefined) throw new Error(`user ${user.userId} does not belong to family chronotype`);
      return syntheticSamples(u, count, seed, start);
    },
  };
}

// ---------------------------------------------------------------- (b) level

/**
 * z = level + a modest cosine day shape + the recent drift the 7-day mean
 * shows + a little sleep; ordered probit with per-user cut and scale.
 */
function levelFamily(): Family {
  return habitFamily("level", "users differ mainly in overall level (mostly high / low / balanced), tracked by the 7-day mean; ordered probit", (random) => {
    const kind = random();
    const level = kind < 0.3 ? uniform(random, 0.6, 1.3) : kind < 0.6 ? -uniform(random, 0.6, 1.3) : uniform(random, -0.3, 0.3);
    const amplitude = uniform(random, 0.25, 0.55);
    const peak = uniform(random, 10, 17);
    const cut = uniform(random, 0.35, 0.6);
    const scale = uniform(random, 0.3, 0.45);
    const sleepWeight = uniform(random, 0.2, 0.6);
    const habits = drawHabits(random, dayRoutine(random));
    // What the 7-day mean hovers around: the mean energy at z = level, widened by the day shape.
    const spread = Math.sqrt(scale ** 2 + amplitude ** 2 / 2);
    const meanEnergy = 1 + phi((level + cut) / spread) + phi((level - cut) / spread);
    const conditional = (f: EnergyFeatureValues, sleep: number): Triple => {
      const z =
        level +
        amplitude * Math.cos((2 * Math.PI * (f.hour_of_day + 0.5 - peak)) / 24) +
        0.9 * (f.avg_energy_last_7_days - meanEnergy) +
        sleepWeight * (sleep - habits.sleepMean);
      const low = phi((-cut - z) / scale);
      const high = phi((z - cut) / scale);
      return normalise([low, 1 - low - high, high]);
    };
    return { habits, meanEnergy, probabilities: (f, h) => marginalOverSleep(h, f, conditional) };
  });
}

// ---------------------------------------------------------------- (c) shapes

type ShapeKind = "night" | "split" | "flat" | "two-peaks";

/**
 * Each user draws one unusual day shape s(x) in -1..1 over hours since waking;
 * softmax over scores (low, medium, high) = (-A s + bL, m, A s + bH).
 */
function shapesFamily(): Family {
  return habitFamily("shapes", "unusual day shapes: night workers, split days, flat days, two peaks at odd hours; softmax over three scores", (random) => {
    const kinds: readonly ShapeKind[] = ["night", "split", "flat", "two-peaks"];
    const kind = kinds[Math.floor(random() * kinds.length)]!;
    let routine: { wake: number; awakeHours: number };
    let shape: (sinceWake: number) => number;
    let strength = uniform(random, 2, 3.2);
    let biasLow = uniform(random, -0.3, 0.3);
    let biasHigh = uniform(random, -0.3, 0.3);
    const medium = uniform(random, 0, 0.7);
    switch (kind) {
      case "night": {
        routine = { wake: uniform(random, 15, 19), awakeHours: uniform(random, 14, 16) };
        const peak = uniform(random, 5, 9);
        const width = uniform(random, 2.5, 4.5);
        shape = (x) => 2 * bump(x, peak, width) - 1;
        break;
      }
      case "split": {
        routine = { wake: uniform(random, 5.5, 8), awakeHours: uniform(random, 15.5, 17) };
        const end1 = uniform(random, 4, 6);
        const start2 = end1 + uniform(random, 3, 5);
        const end2 = start2 + uniform(random, 3, 5);
        const edge = uniform(random, 1.2, 2.5);
        const block = (x: number, a: number, b: number) => sigmoid(edge * (x - a)) * sigmoid(edge * (b - x));
        shape = (x) => 2 * Math.max(block(x, 0.5, end1), block(x, start2, end2)) - 1;
        break;
      }
      case "flat": {
        routine = dayRoutine(random);
        const phase = uniform(random, 0, 24);
        shape = (x) => 0.3 * Math.sin((2 * Math.PI * (x - phase)) / 24);
        strength = uniform(random, 1, 1.5);
        // The level, not the hour, decides: one class dominates this user.
        const dominant = Math.floor(random() * 3);
        const boost = uniform(random, 0.6, 1.4);
        if (dominant === 0) biasLow += boost;
        else if (dominant === 2) biasHigh += boost;
        else {
          biasLow -= boost / 2;
          biasHigh -= boost / 2;
        }
        break;
      }
      case "two-peaks": {
        routine = { wake: uniform(random, 4, 11), awakeHours: uniform(random, 15, 17) };
        const first = uniform(random, 0.5, 2.5);
        const second = first + uniform(random, 9, 12.5);
        const width = uniform(random, 1.3, 2.3);
        shape = (x) => 2 * Math.max(bump(x, first, width), bump(x, second, width)) - 1;
        break;
      }
    }
    const habits = drawHabits(random, routine);
    return {
      habits,
      probabilities: (f, h) => {
        const s = shape(hoursAfter(f.hour_of_day + 0.5, h.wake));
        return softmax([-strength * s + biasLow, medium, strength * s + biasHigh]);
      },
    };
  });
}

// ---------------------------------------------------------------- (d) sleep

/** Knots of the sleep table, in sleep quality relative to the user's own sleep need. */
const SLEEP_KNOTS = [-0.3, -0.12, 0.05, 0.25] as const;
const SLEEP_TABLE: readonly Triple[] = [
  [0.88, 0.1, 0.02],
  [0.6, 0.34, 0.06],
  [0.08, 0.72, 0.2],
  [0.03, 0.12, 0.85],
];

/**
 * Energy is a per-user table over last night's sleep (interpolated linearly
 * between knots placed around the user's sleep need); the hour only adds a
 * mild post-lunch dip.
 */
function sleepFamily(): Family {
  return habitFamily("sleep", "driven by last night's sleep quality through a per-user interpolated table; the hour matters little", (random) => {
    const habits = drawHabits(random, dayRoutine(random));
    const need = habits.sleepMean + uniform(random, -0.08, 0.08);
    const stretch = uniform(random, 0.45, 0.75);
    const table = SLEEP_TABLE.map((row) => normalise(row.map((p) => p * Math.exp(0.25 * normal(random)))));
    const dip = uniform(random, 0.1, 0.5);
    const dipAt = uniform(random, 6, 8);
    const conditional = (f: EnergyFeatureValues, sleep: number): Triple => {
      const x = (sleep - need) / stretch;
      let p: Triple;
      if (x <= SLEEP_KNOTS[0]) p = table[0]!;
      else if (x >= SLEEP_KNOTS[3]) p = table[3]!;
      else {
        let k = 0;
        while (x > SLEEP_KNOTS[k + 1]!) k++;
        const w = (x - SLEEP_KNOTS[k]!) / (SLEEP_KNOTS[k + 1]! - SLEEP_KNOTS[k]!);
        const a = table[k]!;
        const b = table[k + 1]!;
        p = [a[0] * (1 - w) + b[0] * w, a[1] * (1 - w) + b[1] * w, a[2] * (1 - w) + b[2] * w];
      }
      const lowBoost = 1 + dip * bump(hoursAfter(f.hour_of_day + 0.5, habits.wake), dipAt, 1.5);
      return normalise([p[0] * lowBoost, p[1], p[2]]);
    };
    return { habits, probabilities: (f, h) => marginalOverSleep(h, f, conditional) };
  });
}

// ---------------------------------------------------------------- (e) workload

/**
 * A reserve R = capacity + sleep - cost per task x tasks - drain x hours awake;
 * continuation-ratio logit: P(high) = σ(k(R - c)), P(medium | not high) = σ(k(R + c)).
 */
function workloadFamily(): Family {
  return habitFamily("workload", "driven by fatigue: tasks completed today and hours awake; continuation-ratio logit", (random) => {
    const habits = drawHabits(random, dayRoutine(random));
    // Users who finish many tasks have smaller ones: each costs less.
    const perTask = uniform(random, 0.35, 0.6) * Math.sqrt(0.55 / habits.taskRate);
    const drain = uniform(random, 0.02, 0.08);
    const capacity = uniform(random, 1.5, 2.7);
    const sleepWeight = uniform(random, 0.3, 0.9);
    const k = uniform(random, 1.4, 2.2);
    const c = uniform(random, 0.7, 1.1);
    const conditional = (f: EnergyFeatureValues, sleep: number): Triple => {
      const awake = hoursAfter(f.hour_of_day + 0.5, habits.wake);
      const reserve = capacity + sleepWeight * (sleep - habits.sleepMean) - perTask * f.tasks_completed_today - drain * awake;
      const high = sigmoid(k * (reserve - c));
      const medium = (1 - high) * sigmoid(k * (reserve + c));
      return normalise([1 - high - medium, medium, high]);
    };
    return { habits, probabilities: (f, h) => marginalOverSleep(h, f, conditional) };
  });
}

// ---------------------------------------------------------------- (f) weekday

/**
 * Each user has a level v_d in 0..2 for every weekday (from a pattern type plus
 * jitter); P(k) ∝ exp(-(k - v)² / 2ρ²), with v tilted slightly by the hour.
 */
function weekdayFamily(): Family {
  return habitFamily("weekday", "driven by the day of the week, each user their own weekly pattern; Gaussian kernel over a per-weekday level", (random) => {
    const kind = Math.floor(random() * 5);
    const weekend = (lo: number, hi: number) => [uniform(random, lo, hi), uniform(random, lo, hi)];
    let levels: number[];
    switch (kind) {
      case 0: // Monday blues, rising to Friday
        levels = [0, 1, 2, 3, 4].map((d) => 0.1 + (d / 4) * uniform(random, 1.5, 1.9)).concat(weekend(1.3, 1.9));
        break;
      case 1: // weekend low
        levels = [0, 1, 2, 3, 4].map(() => uniform(random, 1.2, 1.9)).concat(weekend(0.1, 0.6));
        break;
      case 2: // weekend high
        levels = [0, 1, 2, 3, 4].map(() => uniform(random, 0.5, 1.1)).concat(weekend(1.7, 2));
        break;
      case 3: {
        // midweek slump
        const depth = uniform(random, 1, 1.6);
        levels = [0, 1, 2, 3, 4].map((d) => 1.8 - depth * Math.exp(-((d - 2) ** 2) / 2)).concat(weekend(1.2, 1.8));
        break;
      }
      default: // irregular
        levels = Array.from({ length: 7 }, () => uniform(random, 0, 2));
    }
    levels = levels.map((v) => clamp(v + 0.15 * normal(random), -0.1, 2.1));
    const width = uniform(random, 0.4, 0.65);
    const tilt = uniform(random, 0, 0.25);
    const tiltPeak = uniform(random, 10, 16);
    const habits = drawHabits(random, dayRoutine(random));
    return {
      habits,
      probabilities: (f) => {
        const v = levels[f.day_of_week]! + tilt * Math.cos((2 * Math.PI * (f.hour_of_day + 0.5 - tiltPeak)) / 24);
        return softmax([0, 1, 2].map((k) => -((k - v) ** 2) / (2 * width * width)) as [number, number, number]);
      },
    };
  });
}

// ---------------------------------------------------------------- (g) no-signal

/** A fixed label distribution per user: near uniform, moderately or strongly skewed to a random class. */
function noSignalFamily(): Family {
  return habitFamily("no-signal", "labels independent of every feature; each user a fixed label distribution (near uniform to skewed)", (random) => {
    const kind = random();
    const top = kind < 0.3 ? uniform(random, 0.34, 0.42) : kind < 0.65 ? uniform(random, 0.45, 0.62) : uniform(random, 0.65, 0.9);
    const split = uniform(random, 0.2, 0.8);
    const dominant = Math.floor(random() * 3);
    const rest = [(1 - top) * split, (1 - top) * (1 - split)];
    const p = normalise([0, 1, 2].map((k) => (k === dominant ? top : rest.shift()!)));
    return { habits: drawHabits(random, dayRoutine(random)), probabilities: () => p };
  });
}

// ---------------------------------------------------------------- exports

/** Seven structurally different kinds of users, so the harness measures the model on more than its own assumptions. */
export const FAMILIES: readonly Family[] = [
  chronotypeFamily(),
  levelFamily(),
  shapesFamily(),
  sleepFamily(),
  workloadFamily(),
  weekdayFamily(),
  noSignalFamily(),
];

/** Real users mislabel their energy; mixing the probabilities too keeps the Bayes accuracy exact under that noise. */
export function withLabelNoise(family: Family, share: number): Family {
  const inner = new WeakMap<FamilyUser, FamilyUser>();
  const mix = (p: Triple): Triple => normalise(p.map((x) => (1 - share) * x + share / 3));
  return {
    name: `${family.name}+noise${Math.round(share * 100)}`,
    description: `${family.description}; ${Math.round(share * 100)}% of labels replaced by a random level`,
    users(count, seed) {
      return family.users(count, seed).map((u) => {
        const user: FamilyUser = { userId: u.userId, probabilities: (f) => mix(u.probabilities(f)) };
        inner.set(user, u);
        return user;
      });
    },
    samples(user, count, seed, start = DEFAULT_START) {
      const u = inner.get(user);
      if (u === undefined) throw new Error(`user ${user.userId} does not belong to family ${family.name}+noise`);
      const random = seededRandom(mixSeed(seed, `noise:${user.userId}`));
      return family.samples(u, count, seed, start).map((s) => {
        // The base label was drawn from p, so replacing it with probability `share` by a uniform level draws from mix(p).
        const replaced = random() < share;
        const label = Math.floor(random() * 3);
        return { ...s, energy: replaced ? ENERGY_LABELS[label]! : s.energy, probabilities: mix(s.probabilities) };
      });
    },
  };
}

/** Many users never enter sleep quality; this measures how a model copes when one feature is absent for whole users. */
export function withMissingSleep(family: Family, shareOfUsers: number): Family {
  const inner = new WeakMap<FamilyUser, FamilyUser>();
  const hide = (f: EnergyFeatureValues): EnergyFeatureValues => ({ ...f, sleep_quality: null });
  return {
    name: `${family.name}+nosleep${Math.round(shareOfUsers * 100)}`,
    description: `${family.description}; ${Math.round(shareOfUsers * 100)}% of users never report sleep`,
    users(count, seed) {
      const base = family.users(count, seed);
      // Exactly round(share x count) users, chosen by a seeded shuffle.
      const random = seededRandom(mixSeed(seed, `nosleep:${family.name}`));
      const order = base.map((_, i) => i);
      for (let i = order.length - 1; i > 0; i--) {
        const j = Math.floor(random() * (i + 1));
        [order[i], order[j]] = [order[j]!, order[i]!];
      }
      const hidden = new Set(order.slice(0, Math.round(shareOfUsers * count)));
      return base.map((u, i) => {
        if (!hidden.has(i)) return u;
        const user: FamilyUser = { userId: u.userId, probabilities: (f) => u.probabilities(hide(f)) };
        inner.set(user, u);
        return user;
      });
    },
    samples(user, count, seed, start = DEFAULT_START) {
      const u = inner.get(user);
      if (u === undefined) return family.samples(user, count, seed, start);
      const random = seededRandom(mixSeed(seed, `nosleep:${user.userId}`));
      // Labels are redrawn from the probabilities without sleep (the family's marginal over the user's sleep).
      return family.samples(u, count, seed, start).map((s) => {
        const features = hide(s.features);
        const probabilities = user.probabilities(features);
        return { ...s, features, energy: ENERGY_LABELS[drawLabel(random, probabilities)]!, probabilities };
      });
    },
  };
}

/** The ceiling any model can reach on these samples, to read a model's accuracy against. */
export function bayesAccuracy(samples: readonly SyntheticSample[]): number {
  if (samples.length === 0) return Number.NaN;
  return samples.reduce((a, s) => a + Math.max(...s.probabilities), 0) / samples.length;
}
