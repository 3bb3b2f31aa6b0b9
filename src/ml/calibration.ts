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
