/**
 * What we believe about anyone's energy before seeing their data: the usual
 * human day (low at night, a morning rise, a post-lunch dip, a second wind in
 * the afternoon, an evening decline). Used when there is neither a user model
 * nor a population model, and as the base to align a user's hours against.
 */

/** P(low, medium, high) for each local hour 0-23 of a typical (unshifted) day. */
const PRIOR_BY_HOUR: readonly (readonly [number, number, number])[] = [
  [0.8, 0.15, 0.05],
  [0.82, 0.14, 0.04],
  [0.84, 0.12, 0.04],
  [0.84, 0.12, 0.04],
  [0.82, 0.14, 0.04],
  [0.75, 0.2, 0.05],
  [0.55, 0.33, 0.12],
  [0.38, 0.42, 0.2],
  [0.22, 0.43, 0.35],
  [0.15, 0.4, 0.45],
  [0.12, 0.38, 0.5],
  [0.14, 0.4, 0.46],
  [0.2, 0.45, 0.35],
  [0.33, 0.47, 0.2],
  [0.36, 0.46, 0.18],
  [0.25, 0.47, 0.28],
  [0.2, 0.45, 0.35],
  [0.22, 0.46, 0.32],
  [0.3, 0.47, 0.23],
  [0.38, 0.45, 0.17],
  [0.47, 0.41, 0.12],
  [0.58, 0.33, 0.09],
  [0.68, 0.26, 0.06],
  [0.75, 0.2, 0.05],
];

/** Prior probabilities at a (possibly fractional, possibly out-of-range) hour, interpolated around the clock. */
export function circadianPrior(hour: number): [number, number, number] {
  const h = ((hour % 24) + 24) % 24;
  const lo = Math.floor(h);
  const t = h - lo;
  const a = PRIOR_BY_HOUR[lo]!;
  const b = PRIOR_BY_HOUR[(lo + 1) % 24]!;
  return [a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1]), a[2] + t * (b[2] - a[2])];
}
