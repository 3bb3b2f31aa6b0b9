/**
 * Blend weights chosen by data: a user's model is a mixture of candidate
 * predictors (their own forests, the pooled population model, the prior,
 * their label frequencies), p = sum_k w_k p_k, with the weights that make the
 * user's held-out labels most likely.
 *
 * Fitting mixture weights by likelihood is concave in the weights, and EM
 * reaches the optimum without step sizes: each round gives every candidate
 * the share of each row's likelihood it explains. A few pseudo-rows spread
 * by `prior` keep a user with ten samples from betting everything on the
 * candidate that happened to guess them. A candidate the data contradicts
 * ends near 0; one that keeps winning ends near 1.
 */

/** Floor under a probability, so one impossible label cannot veto a candidate. */
const FLOOR = 1e-4;

/**
 * Mixture weights (summing to 1) maximising the held-out log-likelihood plus
 * a Dirichlet prior of `strength` pseudo-rows shared as `prior`.
 * `predictions[k][i]` is candidate k's probability vector for row i.
 */
export function fitBlendWeights(
  predictions: readonly (readonly (readonly number[])[])[],
  labels: readonly number[],
  prior: readonly number[],
  strength = 3,
  rounds = 200,
): number[] {
  const k = predictions.length;
  if (k === 0) return [];
  const priorSum = prior.reduce((a, b) => a + b, 0);
  const pi = prior.map((x) => (priorSum > 0 ? x / priorSum : 1 / k));
  const n = labels.length;
  // Likelihood of each row's true label under each candidate.
  const like = predictions.map((rows) => labels.map((y, i) => Math.max(FLOOR, rows[i]?.[y] ?? 0)));
  let w = [...pi];
  for (let round = 0; round < rounds; round++) {
    const next = pi.map((p) => strength * p);
    for (let i = 0; i < n; i++) {
      let total = 0;
      for (let c = 0; c < k; c++) total += w[c]! * like[c]![i]!;
      for (let c = 0; c < k; c++) next[c]! += (w[c]! * like[c]![i]!) / total;
    }
    const sum = next.reduce((a, b) => a + b, 0);
    const updated = next.map((x) => x / sum);
    const change = updated.reduce((a, x, c) => a + Math.abs(x - w[c]!), 0);
    w = updated;
    if (change < 1e-7) break;
  }
  return w;
}

/** The mixture sum_k w_k p_k of candidate probability vectors (skips candidates of weight 0). */
export function mixProbabilities(weights: readonly number[], candidates: readonly (readonly number[])[]): number[] {
  const out = [0, 0, 0];
  let total = 0;
  weights.forEach((w, k) => {
    if (w <= 0) return;
    const p = candidates[k]!;
    for (let c = 0; c < out.length; c++) out[c]! += w * (p[c] ?? 0);
    total += w;
  });
  return total > 0 ? out.map((x) => x / total) : [1 / 3, 1 / 3, 1 / 3];
}
