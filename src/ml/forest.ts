/**
 * The forest interface the service trains and predicts through. Any
 * implementation (ml-random-forest today, our own later) drops in behind it
 * without touching the handlers.
 */

/** Hyper-parameters shared by every forest implementation. */
export interface ForestOptions {
  /** Number of trees. */
  readonly nEstimators: number;
  /** Seed that makes a fit reproducible. */
  readonly seed: number;
  /** Maximum tree depth; undefined means unlimited. */
  readonly maxDepth?: number;
  /** Minimum samples in a leaf. */
  readonly minSamplesLeaf?: number;
  /**
   * Fit the implementation's own probability calibration, if it has one (our
   * forest: a top-label map on out-of-bag votes; default off). Off in the
   * service, which calibrates its blended model itself.
   */
  readonly calibrate?: boolean;
  /** Called after each tree is grown (the worker paces itself here); implementations that cannot, ignore it. */
  readonly afterTree?: () => void;
}

/** A fitted classifier: rows are plain number arrays, NaN marks a missing value. */
export interface Forest {
  /** Which implementation and format wrote this forest (kept with the model). */
  readonly kind: string;
  /** Number of classes; labels are 0..nClasses-1. */
  readonly nClasses: number;
  /** Class probabilities for one row: length nClasses, sums to 1. */
  predictProba(row: readonly number[]): number[];
  /** Compact bytes for ml_models.model_data; load() reverses it. */
  serialize(): Uint8Array;
  /** Bytes held for prediction, when the implementation knows (a model cache counts these). */
  readonly memoryBytes?: number;
}

/** An implementation: how to fit a forest and how to load a stored one. */
export interface ForestAlgorithm {
  /** Name stored with the model so load() can refuse a foreign blob. */
  readonly kind: string;
  /** Fits on rows X with integer labels y in 0..nClasses-1. */
  fit(X: readonly (readonly number[])[], y: readonly number[], nClasses: number, options: ForestOptions): Forest;
  /** Rebuilds a forest from serialize()'s bytes; throws ForestFormatError on a foreign or corrupt blob. */
  load(blob: Uint8Array): Forest;
}

/** A stored model blob that this implementation cannot read. */
export class ForestFormatError extends Error {
  override readonly name = "ForestFormatError";
}
