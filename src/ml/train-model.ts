import { forestAlgorithm } from "./algorithms.ts";
import { headToHead, heldOutPredictions, score, type Scores } from "./evaluation.ts";
import type { ForestOptions } from "./forest.ts";

/**
 * The training job the worker pool runs: plain data in, plain data out.
 * It imports no database, config or logger, so it runs the same in a
 * piscina worker and in a test.
 */

/** The active model, sent along so the new version can be compared on data the active one never saw. */
export interface ActiveModelForComparison {
  readonly format: string;
  readonly blob: Uint8Array;
  /** Rows from this index on were stored after the active model was trained. */
  readonly unseenFrom: number;
}

/** Everything a fit needs. */
export interface TrainJob {
  readonly rows: readonly (readonly number[])[];
  readonly labels: readonly number[];
  readonly nClasses: number;
  readonly format: string;
  readonly options: ForestOptions;
  readonly active?: ActiveModelForComparison;
}

/** How the held-out scores were measured, plus the scores. */
export interface Evaluation extends Scores {
  /** e.g. "stratified 5-fold cross-validation". */
  readonly method: string;
  /** Blended models: each candidate's weight (shown by ListModels). */
  readonly weights?: Readonly<Record<string, number>>;
}

/** Both models scored on the same rows, which the active model was not trained on. */
export interface Comparison {
  readonly samples: number;
  readonly candidateAccuracy: number;
  readonly activeAccuracy: number;
}

/** What the worker sends back. */
export interface TrainResult {
  readonly format: string;
  readonly modelData: Uint8Array;
  readonly evaluation: Evaluation;
  readonly comparison?: Comparison;
  /** What a first version must beat to be activated (the population model: the circadian prior on the same held-out users). */
  readonly baseline?: { readonly name: string; readonly accuracy: number; readonly users: number };
}

/** Fits the final model on every row and measures it on held-out rows first. */
export function trainModel(job: TrainJob): TrainResult {
  const algorithm = forestAlgorithm(job.format);
  const n = job.rows.length;
  if (n === 0) throw new RangeError("cannot train on 0 rows");
  const held = heldOutPredictions(job.labels, job.options.seed, (train, test) => {
    const forest = algorithm.fit(
      train.map((i) => job.rows[i]!),
      train.map((i) => job.labels[i]!),
      job.nClasses,
      job.options,
    );
    return test.map((i) => forest.predictProba(job.rows[i]!));
  });
  const evaluation: Evaluation = {
    ...score(
      held.probabilities,
      held.rows.map((i) => job.labels[i]!),
    ),
    method: held.method,
  };

  const forest = algorithm.fit(job.rows, job.labels, job.nClasses, job.options);
  const result: TrainResult = { format: algorithm.kind, modelData: forest.serialize(), evaluation };
  if (job.active === undefined) return result;

  const active = forestAlgorithm(job.active.format).load(job.active.blob);
  const unseenFrom = job.active.unseenFrom;
  const comparison = headToHead(
    held.rows.flatMap((i, k) =>
      i < unseenFrom ? [] : [{ label: job.labels[i]!, candidate: held.probabilities[k]!, active: () => active.predictProba(job.rows[i]!) }],
    ),
  );
  return comparison === undefined ? result : { ...result, comparison };
}
