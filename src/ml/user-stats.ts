import type { EnergyFeatureValues } from "../domain.ts";

/**
 * What a pooled model needs to know of one user: how often they reported
 * each level, overall, around each hour, on each weekday, after a night of
 * poor, fair or good sleep (or none reported), and with few, some or many
 * tasks done. These are counts, so a row can be taken out (leave-one-out)
 * and put back in O(1), and they are small enough (114 numbers) to store
 * with the user's model.
 *
 * From them come the user-level features of the pooled model: their level
 * (smoothed label frequencies), and their level near this hour, on this
 * weekday, at this sleep and at this workload, each shrunk toward their
 * level by how much data backs it: how this user, not users in general,
 * responds to each. A user with no history gets the population's frequencies, so
 * the same forest answers a new user and a long-standing one.
 */

/** Label counts of a user's history: 24 hours, 7 weekdays, 4 sleep bands, 3 workload bands, each x 3 levels, flat. */
export type UserStats = number[];

const HOURS = 24;
const DAYS = 7;
const SLEEPS = 4;
const LOADS = 3;
const CLASSES = 3;
const SLEEP_AT = HOURS + DAYS;
const LOAD_AT = SLEEP_AT + SLEEPS;

/** Sleep band: 0 not reported, 1 poor (< 0.5), 2 fair (< 0.75), 3 good. */
function sleepBand(f: EnergyFeatureValues): number {
  const q = f.sleep_quality;
  return q === null ? 0 : q < 0.5 ? 1 : q < 0.75 ? 2 : 3;
}

/** Workload band: 0-1, 2-4, 5 or more tasks done today. */
function loadBand(f: EnergyFeatureValues): number {
  return f.tasks_completed_today < 2 ? 0 : f.tasks_completed_today < 5 ? 1 : 2;
}
/** Pseudo-counts pulling the user's level toward the population's. */
const LEVEL_PRIOR = 4;
/** Pseudo-counts pulling the level near an hour (or on a weekday) toward the user's level. */
const LOCAL_PRIOR = 3;
/** Width (hours) of the kernel that pools neighbouring hours: 23:00 counts for midnight. */
const HOUR_WIDTH = 1.5;
const KERNEL: readonly number[] = Array.from({ length: HOURS }, (_, d) => {
  const distance = Math.min(d, HOURS - d);
  return Math.exp(-(distance * distance) / (2 * HOUR_WIDTH * HOUR_WIDTH));
});

/** Names of the columns userLevelFeatures appends (history size, level, level near this hour, on this weekday, at this sleep and workload). */
export const USER_LEVEL_FEATURES = ["history_size", "level_low", "level_high", "level_mean", "hour_level", "day_level", "sleep_level", "load_level"] as const;

/** Stats of nobody: what a new user has. */
export function emptyStats(): UserStats {
  return new Array<number>((LOAD_AT + LOADS) * CLASSES).fill(0);
}

/** Adds (sign 1) or removes (sign -1) one labelled row. */
export function addToStats(stats: UserStats, f: EnergyFeatureValues, label: number, sign = 1): void {
  const hour = ((Math.floor(f.hour_of_day) % HOURS) + HOURS) % HOURS;
  const day = ((Math.floor(f.day_of_week) % DAYS) + DAYS) % DAYS;
  stats[hour * CLASSES + label]! += sign;
  stats[(HOURS + day) * CLASSES + label]! += sign;
  stats[(SLEEP_AT + sleepBand(f)) * CLASSES + label]! += sign;
  stats[(LOAD_AT + loadBand(f)) * CLASSES + label]! += sign;
  summaries.delete(stats);
}

/** Stats of the given rows (all rows when `indexes` is omitted). */
export function statsOf(samples: readonly EnergyFeatureValues[], labels: readonly number[], indexes?: readonly number[]): UserStats {
  const stats = emptyStats();
  if (indexes === undefined) samples.forEach((f, i) => addToStats(stats, f, labels[i]!));
  else for (const i of indexes) addToStats(stats, samples[i]!, labels[i]!);
  return stats;
}

/** Label counts over all hours (each row is counted once, by its hour). */
export function levelCounts(stats: Readonly<UserStats>): [number, number, number] {
  const counts: [number, number, number] = [0, 0, 0];
  for (let h = 0; h < HOURS; h++) for (let c = 0; c < CLASSES; c++) counts[c]! += stats[h * CLASSES + c]!;
  return counts;
}

/** The user's smoothed label frequencies: their counts plus LEVEL_PRIOR rows spread as the population's. */
function smoothedLevel(stats: Readonly<UserStats>, populationFrequencies: readonly number[]): [number, number, number] {
  const counts = levelCounts(stats);
  const n = counts[0] + counts[1] + counts[2];
  const p = (c: number) => (counts[c]! + LEVEL_PRIOR * (populationFrequencies[c] ?? 1 / 3)) / (n + LEVEL_PRIOR);
  return [p(0), p(1), p(2)];
}

/** The user's smoothed label frequencies (what the "level" candidate answers), from the stats' summary. */
export function levelProbabilities(stats: Readonly<UserStats>, populationFrequencies: readonly number[]): [number, number, number] {
  return [...summarise(stats, populationFrequencies).level] as [number, number, number];
}

/** A history of nobody, shared: what a new user's row is built from at prediction time (never to be added to). */
export const NO_HISTORY: Readonly<UserStats> = Object.freeze(emptyStats());

/** Everything the per-query functions need from one user's stats, computed once per stats array (a loaded model's never change). */
interface Summary {
  readonly frequencies: readonly number[];
  readonly level: [number, number, number];
  readonly n: number;
  readonly mean: number;
  readonly hourLevel: readonly number[];
  readonly dayLevel: readonly number[];
  readonly hourProfile: readonly (readonly [number, number, number])[];
  readonly dayProfile: readonly (readonly [number, number, number])[];
  readonly sleepLevel: readonly number[];
  readonly loadLevel: readonly number[];
}

const summaries = new WeakMap<Readonly<UserStats>, Summary>();

function summarise(stats: Readonly<UserStats>, populationFrequencies: readonly number[]): Summary {
  const known = summaries.get(stats);
  if (known?.frequencies.every((x, c) => x === populationFrequencies[c])) return known;
  const level = smoothedLevel(stats, populationFrequencies);
  const [low, medium, high] = level;
  const mean = (medium + 2 * high) / (low + medium + high);
  const counts = levelCounts(stats);
  const n = counts[0] + counts[1] + counts[2];
  const hourLevel: number[] = [];
  const hourProfile: [number, number, number][] = [];
  for (let hour = 0; hour < HOURS; hour++) {
    let weight = 0;
    let sum = 0;
    const sums = [0, 0, 0];
    for (let h = 0; h < HOURS; h++) {
      const k = KERNEL[Math.abs(h - hour)]!;
      const base = h * CLASSES;
      const rows = stats[base]! + stats[base + 1]! + stats[base + 2]!;
      if (rows === 0) continue;
      weight += k * rows;
      sum += k * (stats[base + 1]! + 2 * stats[base + 2]!);
      for (let c = 0; c < CLASSES; c++) sums[c]! += k * stats[base + c]!;
    }
    hourLevel.push((sum + LOCAL_PRIOR * mean) / (weight + LOCAL_PRIOR));
    hourProfile.push([0, 1, 2].map((c) => (sums[c]! + LOCAL_PRIOR * level[c]!) / (weight + LOCAL_PRIOR)) as [number, number, number]);
  }
  const band = (at: number, count: number) => {
    const levels: number[] = [];
    const profiles: [number, number, number][] = [];
    for (let b = 0; b < count; b++) {
      const d = (at + b) * CLASSES;
      const rows = stats[d]! + stats[d + 1]! + stats[d + 2]!;
      levels.push((stats[d + 1]! + 2 * stats[d + 2]! + LOCAL_PRIOR * mean) / (rows + LOCAL_PRIOR));
      profiles.push([0, 1, 2].map((c) => (stats[d + c]! + LOCAL_PRIOR * level[c]!) / (rows + LOCAL_PRIOR)) as [number, number, number]);
    }
    return { levels, profiles };
  };
  const days = band(HOURS, DAYS);
  const dayLevel = days.levels;
  const dayProfile = days.profiles;
  const sleepLevel = band(SLEEP_AT, SLEEPS).levels;
  const loadLevel = band(LOAD_AT, LOADS).levels;
  const summary = { frequencies: populationFrequencies, level, n, mean, hourLevel, dayLevel, hourProfile, dayProfile, sleepLevel, loadLevel };
  summaries.set(stats, summary);
  return summary;
}

const hourOf = (f: EnergyFeatureValues) => ((Math.floor(f.hour_of_day) % HOURS) + HOURS) % HOURS;
const dayOf = (f: EnergyFeatureValues) => ((Math.floor(f.day_of_week) % DAYS) + DAYS) % DAYS;

/** The user-level columns for a row at features f (see USER_LEVEL_FEATURES). */
export function userLevelFeatures(stats: Readonly<UserStats>, f: EnergyFeatureValues, populationFrequencies: readonly number[]): number[] {
  const s = summarise(stats, populationFrequencies);
  return [
    Math.log1p(s.n),
    s.level[0],
    s.level[2],
    s.mean,
    s.hourLevel[hourOf(f)]!,
    s.dayLevel[dayOf(f)]!,
    s.sleepLevel[sleepBand(f)]!,
    s.loadLevel[loadBand(f)]!,
  ];
}

/** The user's own label frequencies around this hour (kernel-pooled over neighbouring hours), shrunk toward their level. */
export function hourProfile(stats: Readonly<UserStats>, f: EnergyFeatureValues, populationFrequencies: readonly number[]): [number, number, number] {
  return [...summarise(stats, populationFrequencies).hourProfile[hourOf(f)]!] as [number, number, number];
}

/** The user's own label frequencies on this weekday, shrunk toward their level. */
export function dayProfile(stats: Readonly<UserStats>, f: EnergyFeatureValues, populationFrequencies: readonly number[]): [number, number, number] {
  return [...summarise(stats, populationFrequencies).dayProfile[dayOf(f)]!] as [number, number, number];
}
