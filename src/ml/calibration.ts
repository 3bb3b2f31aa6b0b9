/**
 * Temperature scaling: p_i ∝ p_i^(1/T). One parameter, fitted on held-out
 * predictions, so a model's confidence means what it says (T > 1 softens an
 * over-confident model, T < 1 sharpens an under-confident one).
 */

const EPS = 1e-6;

/** Applies a temperature to a probability vector (T = 1 leaves it unchanged). */
export function applyTemperature(p: readonly number[], temperature: number): number[] {
  if (temperature === 1) return [...p];
  const powered = p.map((x) => Math.max(EPS, x) ** (1 / temperature));
  const sum = powered.reduce((a, b) => a + b, 0);
  return powered.map((x) => x / sum);
}

/** Mean negative log-likelihood of labels under probabilities. */
export function logLoss(probabilities: readonly (readonly number[])[], labels: readonly number[]): number {
  let loss = 0;
  for (let i = 0; i < labels.length; i++) loss -= Math.log(Math.max(EPS, probabilities[i]![labels[i]!] ?? 0));
  return labels.length === 0 ? 0 : loss / labels.length;
}

/** The temperature (0.3-4) that minimises log loss on held-out predictions; 1 when there are too few. */
export function fitTemperature(probabilities: readonly (readonly number[])[], labels: readonly number[], minSamples = 30): number {
  if (labels.length < minSamples) return 1;
  let best = 1;
  let bestLoss = logLoss(probabilities, labels);
  for (let t = 0.3; t <= 4.0001; t += 0.05) {
    const loss = logLoss(
      probabilities.map((p) => applyTemperature(p, t)),
      labels,
    );
    if (loss < bestLoss - 1e-9) {
      bestLoss = loss;
      best = Math.round(t * 100) / 100;
    }
  }
  return best;
}

/**
 * A two-parameter calibration map: a temperature, then a share `floor` of
 * the uniform distribution mixed in, p' = (1 - floor) p^(1/T) / Z + floor / 3.
 * A temperature alone moves every confidence the same way; a linear pool of
 * forecasts on noisy labels often needs two moves at once (Ranjan & Gneiting
 * 2010: the pool is too flat where its members disagree, yet no label is
 * ever as certain as its sharpest rows say), which T < 1 with a floor can
 * express. Both steps keep the order of the classes, so the predicted class
 * never changes.
 */
export interface Calibration {
  readonly temperature: number;
  readonly floor: number;
}

/** Applies a calibration map (temperature 1 and floor 0 leave p unchanged). */
export function applyCalibration(p: readonly number[], calibration: Calibration): number[] {
  const tempered = applyTemperature(p, calibration.temperature);
  const floor = calibration.floor;
  if (floor <= 0) return tempered;
  return tempered.map((x) => (1 - floor) * x + floor / tempered.length);
}

/** Grid of the calibration's posterior: log T evenly over [0.3, 4], floor evenly over [0, 0.5]. */
const LOG_T_MIN = Math.log(0.3);
const LOG_T_MAX = Math.log(4);
const LOG_T_STEP = 0.05;
const FLOOR_MAX = 0.5;
const FLOOR_STEP = 0.025;

/**
 * The calibration map fitted on held-out predictions: the posterior mean of
 * (log T, floor) under a flat prior on the grid above, so a handful of
 * held-out rows cannot push the map to an extreme that merely fits them
 * (the most likely point sits on the grid's edge for many users, with a
 * ridge of near-equal fits along it). Null when there are too few rows.
 */
export function fitCalibration(probabilities: readonly (readonly number[])[], labels: readonly number[], minSamples = 30): Calibration | null {
  const n = labels.length;
  if (n < minSamples) return null;
  const logs = probabilities.map((p) => p.map((x) => Math.log(Math.max(EPS, x))));
  const floors: number[] = [];
  for (let f = 0; f <= FLOOR_MAX + 1e-9; f += FLOOR_STEP) floors.push(f);
  const points: { logT: number; floor: number; logLik: number }[] = [];
  const truth = new Float64Array(n);
  for (let logT = LOG_T_MIN; logT <= LOG_T_MAX + 1e-9; logT += LOG_T_STEP) {
    const inv = Math.exp(-logT);
    for (let i = 0; i < n; i++) {
      const row = logs[i]!;
      let max = Number.NEGATIVE_INFINITY;
      for (const x of row) max = Math.max(max, x * inv);
      let sum = 0;
      for (const x of row) sum += Math.exp(x * inv - max);
      truth[i] = Math.exp((row[labels[i]!] ?? Math.log(EPS)) * inv - max) / sum;
    }
    for (const floor of floors) {
      let logLik = 0;
      for (let i = 0; i < n; i++) logLik += Math.log((1 - floor) * truth[i]! + floor / (logs[i]!.length || 3));
      points.push({ logT, floor, logLik });
    }
  }
  const best = Math.max(...points.map((p) => p.logLik));
  let z = 0;
  let logT = 0;
  let floor = 0;
  for (const p of points) {
    const w = Math.exp(p.logLik - best);
    z += w;
    logT += w * p.logT;
    floor += w * p.floor;
  }
  return { temperature: Math.round(Math.exp(logT / z) * 1e4) / 1e4, floor: Math.round((floor / z) * 1e4) / 1e4 };
}
