/**
 * Drift detection on a model's live answers: is the run of recent answers
 * too poor to be bad luck for a model that is as sure as it says?
 *
 * Why not ADWIN: its Hoeffding bound needs hundreds of answers to see a drop
 * of 20 points, and we want to react within tens. Each answer comes with the
 * model's confidence, which (the model being calibrated) is its chance of
 * being right; without drift the number right in a window is a sum of those
 * Bernoulli trials. A one-sided test on that sum, over a few recent windows,
 * sees a confident model turning wrong within 15-30 answers.
 */

/** One answered prediction. */
export interface Answer {
  readonly correct: boolean;
  /** The model's top probability for the prediction, 0-1. */
  readonly confidence: number;
}

/** Outcome of a drift check. */
export interface DriftCheck {
  readonly drifted: boolean;
  /** The recent window (in answers) that showed the drop, or the largest window checked. */
  readonly window: number;
  readonly recentAccuracy: number;
  /** How many standard deviations below the expected number right the window fell (negative = worse). */
  readonly z: number;
}

/** Windows of recent answers tested, smallest first. */
export const DRIFT_WINDOWS: readonly number[] = [15, 20, 30, 45, 60];

/**
 * z for a one-sided test at about 1% per window (the windows overlap, so the
 * overall rate stays near it). A false alarm costs one retrain whose result
 * must still beat the active model on recent data before it serves.
 */
export const DRIFT_Z = -2.33;

/** Checks the newest answers (oldest first) against what the model's confidence promised. */
export function detectDrift(answers: readonly Answer[], threshold = DRIFT_Z): DriftCheck {
  let last: DriftCheck = { drifted: false, window: 0, recentAccuracy: 0, z: 0 };
  for (const window of DRIFT_WINDOWS) {
    if (answers.length < window) break;
    const recent = answers.slice(-window);
    let correct = 0;
    let expected = 0;
    let variance = 0;
    for (const a of recent) {
      const p = Math.min(0.999, Math.max(0.001, a.confidence));
      if (a.correct) correct++;
      expected += p;
      variance += p * (1 - p);
    }
    // Continuity correction: counts are whole numbers.
    const z = (correct + 0.5 - expected) / Math.sqrt(variance);
    last = { drifted: z < threshold, window, recentAccuracy: correct / window, z };
    if (last.drifted) return last;
  }
  return last;
}
