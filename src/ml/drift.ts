/**
 * Drift detection on a model's live accuracy: is the run of recent answers
 * too poor to be bad luck for a model as good as it was measured to be?
 *
 * Why not ADWIN: its Hoeffding bound needs hundreds of answers to see a drop
 * of 20 points, and we want to react within tens. We know the accuracy the
 * model should have (its held-out evaluation), so a one-sided exact binomial
 * test over a few recent windows answers sooner with a controlled error rate.
 */

/** Outcome of a drift check. */
export interface DriftCheck {
  readonly drifted: boolean;
  /** The recent window (in answers) that showed the drop, or the largest window checked. */
  readonly window: number;
  readonly recentAccuracy: number;
  readonly pValue: number;
}

/** P(X <= k) for X ~ Binomial(n, p). */
export function binomialCdf(k: number, n: number, p: number): number {
  if (k < 0) return 0;
  if (k >= n) return 1;
  let term = (1 - p) ** n;
  let sum = term;
  for (let i = 1; i <= k; i++) {
    term *= ((n - i + 1) / i) * (p / (1 - p));
    sum += term;
  }
  return Math.min(1, sum);
}

/** Windows of recent answers tested, smallest first. */
export const DRIFT_WINDOWS: readonly number[] = [15, 20, 30, 45, 60];

/**
 * Checks the newest answers (oldest first in `outcomes`) against the accuracy
 * the model is expected to have. `alpha` is per window; the windows overlap,
 * so the overall false-alarm rate stays close to it.
 */
export function detectDrift(outcomes: readonly boolean[], expectedAccuracy: number, alpha = 0.005): DriftCheck {
  let last: DriftCheck = { drifted: false, window: 0, recentAccuracy: 0, pValue: 1 };
  const p = Math.min(0.999, Math.max(0.001, expectedAccuracy));
  for (const window of DRIFT_WINDOWS) {
    if (outcomes.length < window) break;
    const recent = outcomes.slice(-window);
    const correct = recent.filter(Boolean).length;
    const pValue = binomialCdf(correct, window, p);
    last = { drifted: pValue < alpha, window, recentAccuracy: correct / window, pValue };
    if (last.drifted) return last;
  }
  return last;
}
