/**
 * Our own random-forest classifier (replaces ml-random-forest): histogram
 * split search on pre-binned features, Gini impurity, bootstrap as per-row
 * sample counts, features sampled at every split, a learned direction for
 * missing values at every split, flat typed-array trees and a compact binary
 * format. See bench/README-forest.md for measurements.
 *
 * Fitting can be split across workers: fitTrees() grows any range of trees
 * (each tree has its own seed stream derived from (seed, tree index)), and
 * mergeForests() joins the parts into the same forest a full fit gives.
 */

import { ForestFormatError, type ForestAlgorithm, type ForestOptions } from "./forest.ts";
import { binMatrix, learnBinning, toDense, type DenseMatrix } from "./own-forest/binning.ts";
import { growTrees, type TreeParams } from "./own-forest/builder.ts";
import { decodePart, FORMAT_VERSION, MAGIC } from "./own-forest/format.ts";
import { InvalidTreesError, OwnForest, type OwnForestRuntime } from "./own-forest/model.ts";
import { OWN_FOREST_KIND, PART_FORMAT, type ForestPart } from "./own-forest/part.ts";
import { normaliseSeed } from "./own-forest/rng.ts";
import { fitTopLabelMap } from "./own-forest/top-label.ts";

export { OwnForest, OWN_FOREST_KIND, FORMAT_VERSION, MAGIC };
export type { DenseMatrix, ForestPart, OwnForestRuntime };

/**
 * ForestOptions plus the knobs specific to this implementation. `calibrate`
 * (default false: probabilities are the mean of the leaves' distributions,
 * as scikit-learn's) fits a top-label map on the out-of-bag votes when there
 * is a bootstrap and at least 100 out-of-bag rows; it never changes the
 * predicted class (see own-forest/top-label.ts).
 */
export interface OwnForestOptions extends ForestOptions {
  /**
   * Features examined at every split: "sqrt" (default, floor(sqrt(nFeatures))),
   * "log2", "all", an integer count, or a fraction in (0, 1).
   */
  readonly maxFeatures?: number | "sqrt" | "log2" | "all";
  /** Draw a bootstrap sample per tree (default true). */
  readonly bootstrap?: boolean;
}

/** Trees [start, end) of the forest, 0 <= start < end <= nEstimators. */
export type TreeRange = readonly [start: number, end: number];

/** What fit() needs per row matrix: row arrays (NaN = missing) or a dense row-major matrix. */
export type ForestInput = readonly (readonly number[])[] | DenseMatrix;

const MAX_FEATURES = 16383;

function resolveMtry(nFeatures: number, maxFeatures: OwnForestOptions["maxFeatures"]): number {
  if (maxFeatures === undefined || maxFeatures === "sqrt") return Math.max(1, Math.floor(Math.sqrt(nFeatures)));
  if (maxFeatures === "log2") return Math.max(1, Math.floor(Math.log2(nFeatures)));
  if (maxFeatures === "all") return nFeatures;
  if (typeof maxFeatures === "number") {
    if (Number.isInteger(maxFeatures) && maxFeatures >= 1) return Math.min(nFeatures, maxFeatures);
    if (maxFeatures > 0 && maxFeatures < 1) return Math.max(1, Math.floor(maxFeatures * nFeatures));
  }
  throw new RangeError(`maxFeatures must be "sqrt", "log2", "all", an integer >= 1 or a fraction in (0, 1); got ${String(maxFeatures)}`);
}

function resolveParams(nFeatures: number, options: OwnForestOptions): TreeParams {
  const { nEstimators, maxDepth, minSamplesLeaf } = options;
  if (!(Number.isInteger(nEstimators) && nEstimators >= 1)) throw new RangeError(`nEstimators must be an integer >= 1, got ${nEstimators}`);
  if (maxDepth !== undefined && !(Number.isInteger(maxDepth) && maxDepth >= 0)) {
    throw new RangeError(`maxDepth must be an integer >= 0 or undefined, got ${maxDepth}`);
  }
  if (minSamplesLeaf !== undefined && !(Number.isInteger(minSamplesLeaf) && minSamplesLeaf >= 1)) {
    throw new RangeError(`minSamplesLeaf must be an integer >= 1, got ${minSamplesLeaf}`);
  }
  return {
    seed: normaliseSeed(options.seed),
    maxDepth: maxDepth ?? Infinity,
    minSamplesLeaf: minSamplesLeaf ?? 1,
    mtry: resolveMtry(nFeatures, options.maxFeatures),
    bootstrap: options.bootstrap ?? true,
    ...(options.afterTree === undefined ? {} : { afterTree: options.afterTree }),
  };
}

function toLabels(y: readonly number[] | ArrayLike<number>, nRows: number, nClasses: number): Uint16Array {
  if (!(Number.isInteger(nClasses) && nClasses >= 1 && nClasses <= 16383)) {
    throw new RangeError(`nClasses must be an integer in 1..16383, got ${nClasses}`);
  }
  if (y.length !== nRows) throw new RangeError(`${y.length} labels for ${nRows} rows`);
  const out = new Uint16Array(nRows);
  for (let i = 0; i < nRows; i++) {
    const v = y[i]!;
    if (!(Number.isInteger(v) && v >= 0 && v < nClasses)) throw new RangeError(`label ${v} at row ${i} is not an integer in 0..${nClasses - 1}`);
    out[i] = v;
  }
  return out;
}

/**
 * Grows trees [start, end) of the forest that fit() would build with these
 * arguments. Pure and deterministic; run parts in workers and join them with
 * mergeForests(). The result is structured-cloneable.
 */
export function fitTrees(
  X: ForestInput,
  y: readonly number[] | ArrayLike<number>,
  nClasses: number,
  options: OwnForestOptions,
  treeRange: TreeRange,
): ForestPart {
  const dense = toDense(X);
  const { nRows, nFeatures } = dense;
  if (nRows === 0) throw new RangeError("cannot fit a forest on zero rows");
  if (nFeatures < 1 || nFeatures > MAX_FEATURES) throw new RangeError(`feature count must be in 1..${MAX_FEATURES}, got ${nFeatures}`);
  const labels = toLabels(y, nRows, nClasses);
  const params = resolveParams(nFeatures, options);
  const [start, end] = treeRange;
  if (!(Number.isInteger(start) && Number.isInteger(end) && start >= 0 && start < end && end <= options.nEstimators)) {
    throw new RangeError(`tree range [${start}, ${end}) is not within [0, ${options.nEstimators})`);
  }
  const binning = learnBinning(dense);
  const Xb = binMatrix(dense, binning);
  const oob = options.calibrate === true && params.bootstrap ? new Float64Array(nRows * nClasses) : undefined;
  const trees = growTrees(Xb, nRows, binning, labels, nClasses, params, start, end, oob ?? null);
  return {
    format: PART_FORMAT,
    nClasses,
    nFeatures,
    treeStart: start,
    treeEnd: end,
    totalTrees: options.nEstimators,
    nBins: binning.nBins,
    edges: binning.edges,
    ...trees,
    calibration: new Float32Array(0),
    ...(oob === undefined ? {} : { oob }),
  };
}

function sameArray(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return false;
  return true;
}

function concat<T extends Int16Array | Int32Array | Uint8Array | Float32Array>(arrays: readonly T[], make: (n: number) => T): T {
  if (arrays.length === 1) return arrays[0]!;
  let n = 0;
  for (const a of arrays) n += a.length;
  const out = make(n);
  let o = 0;
  for (const a of arrays) {
    out.set(a, o);
    o += a.length;
  }
  return out;
}

/**
 * Joins parts from fitTrees() (in any order) into one forest. The parts must
 * cover trees 0..totalTrees-1 exactly once and come from the same data.
 * Given the training labels, and when every part carries out-of-bag votes,
 * the merged forest gets its top-label calibration (what fit() does).
 */
export function mergeForests(parts: readonly ForestPart[], labels?: ArrayLike<number>): OwnForest {
  if (parts.length === 0) throw new RangeError("mergeForests needs at least one part");
  const sorted = [...parts].sort((a, b) => a.treeStart - b.treeStart);
  const first = sorted[0]!;
  let next = 0;
  for (const p of sorted) {
    if (p.format !== PART_FORMAT) throw new RangeError(`not an own-random-forest part: format ${String(p.format)}`);
    if (p.treeStart !== next) {
      throw new RangeError(p.treeStart < next ? `parts overlap at tree ${p.treeStart}` : `trees ${next}..${p.treeStart - 1} are missing`);
    }
    if (p.treeEnd - p.treeStart !== p.treeNodeCounts.length) throw new RangeError(`part [${p.treeStart}, ${p.treeEnd}) holds ${p.treeNodeCounts.length} trees`);
    if (p.totalTrees !== first.totalTrees || p.nClasses !== first.nClasses || p.nFeatures !== first.nFeatures) {
      throw new RangeError("parts come from different fits (tree count, classes or features differ)");
    }
    if (!sameArray(p.nBins, first.nBins) || !sameArray(p.edges, first.edges)) {
      throw new RangeError("parts were fitted on different data (feature bins differ)");
    }
    next = p.treeEnd;
  }
  if (next !== first.totalTrees) throw new RangeError(`trees ${next}..${first.totalTrees - 1} are missing`);
  let calibration: Float32Array = new Float32Array(0);
  if (labels !== undefined && sorted.every((p) => p.oob !== undefined)) {
    const C = first.nClasses;
    const oob = new Float64Array(first.oob!.length);
    for (const p of sorted) {
      if (p.oob!.length !== oob.length) throw new RangeError("parts were fitted on different data (row counts differ)");
      for (let i = 0; i < oob.length; i++) oob[i]! += p.oob![i]!;
    }
    if (labels.length * C !== oob.length) throw new RangeError(`${labels.length} labels for ${oob.length / C} rows`);
    calibration = fitTopLabelMap(oob, labels, C);
  }
  const merged: ForestPart = {
    format: PART_FORMAT,
    nClasses: first.nClasses,
    nFeatures: first.nFeatures,
    treeStart: 0,
    treeEnd: next,
    totalTrees: next,
    nBins: first.nBins,
    edges: first.edges,
    treeNodeCounts: concat(
      sorted.map((p) => p.treeNodeCounts),
      (n) => new Int32Array(n),
    ),
    codes: concat(
      sorted.map((p) => p.codes),
      (n) => new Int16Array(n),
    ),
    bins: concat(
      sorted.map((p) => p.bins),
      (n) => new Uint8Array(n),
    ),
    mixed: concat(
      sorted.map((p) => p.mixed),
      (n) => new Float32Array(n),
    ),
    calibration,
  };
  return new OwnForest(merged);
}

/** The buffers of a part, for a zero-copy postMessage / Piscina.move() transfer list. */
export function partTransferList(part: ForestPart): ArrayBuffer[] {
  const arrays = [part.nBins, part.edges, part.treeNodeCounts, part.codes, part.bins, part.mixed, part.calibration];
  if (part.oob !== undefined) arrays.push(part.oob);
  return [...new Set(arrays.map((a) => a.buffer as ArrayBuffer))];
}

/** Fits a whole forest in this thread. */
export function fitOwnForest(X: ForestInput, y: readonly number[] | ArrayLike<number>, nClasses: number, options: OwnForestOptions): OwnForest {
  return mergeForests([fitTrees(X, y, nClasses, options, [0, options.nEstimators])], y);
}

/**
 * Rebuilds a forest from serialize()'s bytes; ForestFormatError on anything
 * else. An 8-byte-aligned blob is referenced, not copied (do not change it).
 */
export function loadOwnForest(blob: Uint8Array, runtime?: OwnForestRuntime): OwnForest {
  const part = decodePart(blob);
  try {
    return new OwnForest(part, runtime);
  } catch (err) {
    if (err instanceof InvalidTreesError) throw new ForestFormatError(`corrupt own-random-forest blob: ${err.message}`);
    throw err;
  }
}

/** ForestAlgorithm whose fit/load return the concrete OwnForest (with predictProbaBatch). */
export interface OwnForestAlgorithm extends ForestAlgorithm {
  fit(X: readonly (readonly number[])[], y: readonly number[], nClasses: number, options: OwnForestOptions): OwnForest;
  load(blob: Uint8Array, runtime?: OwnForestRuntime): OwnForest;
}

export const ownForest: OwnForestAlgorithm = {
  kind: OWN_FOREST_KIND,
  fit: fitOwnForest,
  load: loadOwnForest,
};
