/**
 * Seeded synthetic data shaped like the service's features, plus the
 * metrics the forest bench and tests report. No dependencies.
 *
 * Features: hour_of_day 0-23, day_of_week 0-6, tasks_completed_today 0-12,
 * avg_energy_last_7_days 1-3 (mean of 7 daily levels, 2 decimals),
 * sleep_quality 0-1 (2 decimals, ~30% missing = NaN).
 * Label: energy level 0/1/2 from a known score cut at its tertiles (balanced),
 * then 15% label noise (replaced by one of the other classes).
 */

export const FEATURE_NAMES = ["hour_of_day", "day_of_week", "tasks_completed_today", "avg_energy_last_7_days", "sleep_quality"];
export const N_CLASSES = 3;

export interface Dataset {
  readonly X: number[][];
  readonly y: number[];
}

/** mulberry32 as a closure returning floats in [0, 1). */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The known pattern behind the labels. */
export function energyScore(row: readonly number[]): number {
  const [hour, dow, tasks, avg, sleep] = row as [number, number, number, number, number];
  const circadian = 1.2 * Math.sin((2 * Math.PI * (hour - 8)) / 24);
  const weekend = dow >= 5 ? 0.5 : 0;
  const sleepEffect = Number.isNaN(sleep) ? 0 : 1.5 * (sleep - 0.5);
  return circadian + weekend - 0.12 * tasks + 1.0 * (avg - 2) + sleepEffect;
}

export function generateEnergyData(nRows: number, seed: number, options: { labelNoise?: number; missingRate?: number } = {}): Dataset {
  const labelNoise = options.labelNoise ?? 0.15;
  const missingRate = options.missingRate ?? 0.3;
  const rand = rng(seed);
  const X: number[][] = [];
  const scores: number[] = [];
  for (let i = 0; i < nRows; i++) {
    const hour = Math.floor(rand() * 24);
    const dow = Math.floor(rand() * 7);
    const tasks = Math.floor(rand() * 13);
    let s = 0;
    for (let d = 0; d < 7; d++) s += 1 + Math.floor(rand() * 3);
    const avg = Math.round((s / 7) * 100) / 100;
    const sleepRaw = Math.round(rand() * 100) / 100;
    const sleep = rand() < missingRate ? NaN : sleepRaw;
    const row = [hour, dow, tasks, avg, sleep];
    X.push(row);
    scores.push(energyScore(row));
  }
  const sorted = [...scores].sort((a, b) => a - b);
  const t1 = sorted[Math.floor(nRows / 3)] ?? 0;
  const t2 = sorted[Math.floor((2 * nRows) / 3)] ?? 0;
  const y: number[] = scores.map((s) => (s < t1 ? 0 : s < t2 ? 1 : 2));
  for (let i = 0; i < nRows; i++) {
    if (rand() < labelNoise) y[i] = (y[i]! + 1 + Math.floor(rand() * (N_CLASSES - 1))) % N_CLASSES;
  }
  return { X, y };
}

/** Splits off the last `testFraction` of rows as a held-out set. */
export function trainTestSplit(data: Dataset, testFraction: number): { train: Dataset; test: Dataset } {
  const nTest = Math.round(data.X.length * testFraction);
  const cut = data.X.length - nTest;
  return {
    train: { X: data.X.slice(0, cut), y: data.y.slice(0, cut) },
    test: { X: data.X.slice(cut), y: data.y.slice(cut) },
  };
}

/** Accuracy of argmax over row-major probabilities (nRows x nClasses). */
export function accuracy(proba: ArrayLike<number>, y: readonly number[], nClasses: number): number {
  let ok = 0;
  for (let i = 0; i < y.length; i++) {
    let best = 0;
    for (let c = 1; c < nClasses; c++) if (proba[i * nClasses + c]! > proba[i * nClasses + best]!) best = c;
    if (best === y[i]) ok++;
  }
  return ok / y.length;
}

/** Expected calibration error of the top class, `nBins` equal-width confidence bins. */
export function expectedCalibrationError(proba: ArrayLike<number>, y: readonly number[], nClasses: number, nBins = 10): number {
  const count = new Float64Array(nBins);
  const conf = new Float64Array(nBins);
  const hit = new Float64Array(nBins);
  for (let i = 0; i < y.length; i++) {
    let best = 0;
    for (let c = 1; c < nClasses; c++) if (proba[i * nClasses + c]! > proba[i * nClasses + best]!) best = c;
    const p = proba[i * nClasses + best]!;
    const b = Math.min(nBins - 1, Math.floor(p * nBins));
    count[b]!++;
    conf[b]! += p;
    if (best === y[i]) hit[b]!++;
  }
  let ece = 0;
  for (let b = 0; b < nBins; b++) {
    if (count[b]! > 0) ece += (count[b]! / y.length) * Math.abs(hit[b]! / count[b]! - conf[b]! / count[b]!);
  }
  return ece;
}

/**
 * Mean multi-class Brier score (sum over classes of (p - [class = y])^2): a
 * proper score, so unlike ECE it cannot be improved by being less accurate.
 */
export function brierScore(proba: ArrayLike<number>, y: readonly number[], nClasses: number): number {
  let sum = 0;
  for (let i = 0; i < y.length; i++) {
    for (let c = 0; c < nClasses; c++) sum += (proba[i * nClasses + c]! - (c === y[i] ? 1 : 0)) ** 2;
  }
  return y.length === 0 ? 0 : sum / y.length;
}

/** Row arrays to a row-major Float64Array. */
export function toFloat64(X: readonly (readonly number[])[]): Float64Array {
  const nF = X[0]?.length ?? 0;
  const out = new Float64Array(X.length * nF);
  for (let r = 0; r < X.length; r++) for (let f = 0; f < nF; f++) out[r * nF + f] = X[r]![f]!;
  return out;
}
