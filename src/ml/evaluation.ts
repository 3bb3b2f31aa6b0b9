import { Mulberry32 } from "./own-forest/rng.ts";

/**
 * Held-out evaluation: stratified folds and the scores we store for every
 * model version. Pure and seeded so an evaluation can be rerun exactly.
 */

/** Uniform floats in [0, 1) from the forest's mulberry32 (one RNG in the codebase): same seed, same folds, on every platform. */
export function seededRandom(seed: number): () => number {
  const rng = new Mulberry32(seed);
  return () => rng.nextU32() / 4294967296;
}

/** Assigns each row a fold 0..k-1 so that every class is spread evenly over the folds. */
export function stratifiedFolds(labels: readonly number[], k: number, seed: number): number[] {
  const random = seededRandom(seed);
  const byClass = new Map<number, number[]>();
  labels.forEach((label, i) => {
    const list = byClass.get(label) ?? [];
    list.push(i);
    byClass.set(label, list);
  });
  const folds = new Array<number>(labels.length).fill(0);
  let offset = 0;
  for (const label of [...byClass.keys()].sort((a, b) => a - b)) {
    const idx = byClass.get(label)!;
    for (let i = idx.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [idx[i], idx[j]] = [idx[j]!, idx[i]!];
    }
    // Continue the round robin where the previous class stopped, so small classes do not all land in fold 0.
    idx.forEach((row, position) => {
      folds[row] = (offset + position) % k;
    });
    offset = (offset + idx.length) % k;
  }
  return folds;
}

/** Deterministic fold of a user id among `folds` (FNV-1a), so a population and a user's job agree without storing a list. */
export function userFold(userId: string, folds: number): number {
  let h = 2166136261;
  for (const ch of userId) h = Math.imul(h ^ ch.codePointAt(0)!, 16777619);
  return (h >>> 0) % folds;
}

/** Held-out predictions: which rows were scored, their probabilities, and how they were held out. */
export interface HeldOut {
  /** Indexes of the scored rows, ascending. */
  readonly rows: number[];
  /** Probabilities for each scored row, in the same order. */
  readonly probabilities: number[][];
  readonly method: string;
}

/** Below this many rows every row is held out once (5-fold); above it one stratified 20% split is enough and 5x cheaper. */
export const KFOLD_LIMIT = 1000;

/**
 * Predictions for rows a model did not see: stratified 5-fold below
 * KFOLD_LIMIT rows, a stratified 20% holdout above. `fitPredict` fits on
 * the train indexes and returns probabilities for each test index.
 */
export function heldOutPredictions(labels: readonly number[], seed: number, fitPredict: (train: number[], test: number[]) => number[][]): HeldOut {
  const n = labels.length;
  const folds = stratifiedFolds(labels, 5, seed);
  const kfold = n < KFOLD_LIMIT;
  const byRow: (number[] | undefined)[] = new Array(n);
  for (const fold of kfold ? [0, 1, 2, 3, 4] : [0]) {
    const train: number[] = [];
    const test: number[] = [];
    for (let i = 0; i < n; i++) (folds[i] === fold ? test : train).push(i);
    if (train.length === 0 || test.length === 0) continue;
    const predicted = fitPredict(train, test);
    test.forEach((row, k) => (byRow[row] = predicted[k]));
  }
  const rows = byRow.flatMap((p, i) => (p === undefined ? [] : [i]));
  return {
    rows,
    probabilities: rows.map((i) => byRow[i]!),
    method: kfold ? "stratified 5-fold cross-validation" : "stratified 20% holdout",
  };
}

/** Scores of a set of probability predictions against true labels. */
export interface Scores {
  /** Share of rows whose top class is the true one. */
  readonly accuracy: number;
  /** Mean squared error of the probability vector against the one-hot label. */
  readonly brier: number;
  /** Expected calibration error of the top class, 10 equal-width bins. */
  readonly ece: number;
  readonly samples: number;
}

/** Index of the largest probability (the first one on ties). */
export function argmax(p: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < p.length; i++) if (p[i]! > p[best]!) best = i;
  return best;
}

/** Accuracy, Brier score and ECE of probabilities against labels. */
export function score(probabilities: readonly (readonly number[])[], labels: readonly number[]): Scores {
  const n = labels.length;
  if (n === 0) return { accuracy: 0, brier: 0, ece: 0, samples: 0 };
  let correct = 0;
  let brier = 0;
  const binCount = new Array<number>(10).fill(0);
  const binConfidence = new Array<number>(10).fill(0);
  const binCorrect = new Array<number>(10).fill(0);
  for (let i = 0; i < n; i++) {
    const p = probabilities[i]!;
    const top = argmax(p);
    const hit = top === labels[i] ? 1 : 0;
    correct += hit;
    for (let c = 0; c < p.length; c++) brier += ((p[c] ?? 0) - (c === labels[i] ? 1 : 0)) ** 2;
    const confidence = p[top] ?? 0;
    const bin = Math.min(9, Math.floor(confidence * 10));
    binCount[bin]!++;
    binConfidence[bin]! += confidence;
    binCorrect[bin]! += hit;
  }
  let ece = 0;
  for (let b = 0; b < 10; b++) {
    if (binCount[b]! > 0) ece += Math.abs(binCorrect[b]! - binConfidence[b]!) / n;
  }
  return { accuracy: correct / n, brier: brier / n, ece, samples: n };
}

/**
 * Head to head on the rows the active version never saw: each row's label,
 * the candidate's held-out probabilities, and the active version's answer.
 * Undefined when there is no such row (the caller falls back to stored scores).
 */
export function headToHead(
  rows: readonly { readonly label: number; readonly candidate: readonly number[]; readonly active: () => readonly number[] }[],
): { samples: number; candidateAccuracy: number; activeAccuracy: number } | undefined {
  let candidateHits = 0;
  let activeHits = 0;
  for (const row of rows) {
    if (argmax(row.candidate) === row.label) candidateHits++;
    if (argmax(row.active()) === row.label) activeHits++;
  }
  return rows.length === 0 ? undefined : { samples: rows.length, candidateAccuracy: candidateHits / rows.length, activeAccuracy: activeHits / rows.length };
}
