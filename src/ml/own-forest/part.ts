/** The compact, worker-transferable form of (part of) a forest. */

export const OWN_FOREST_KIND = "own-random-forest";
export const PART_FORMAT = "own-random-forest-part/1";

/**
 * Trees [treeStart, treeEnd) of a forest in compact form, plus the binning
 * they were grown on. Only plain numbers and typed arrays, so it is
 * structured-cloneable (and its buffers transferable) between worker threads.
 */
export interface ForestPart {
  readonly format: typeof PART_FORMAT;
  readonly nClasses: number;
  readonly nFeatures: number;
  readonly treeStart: number;
  readonly treeEnd: number;
  /** Trees in the whole forest this part belongs to (options.nEstimators). */
  readonly totalTrees: number;
  /** Value bins per feature. */
  readonly nBins: Uint16Array;
  /** Bin edges of all features, nBins[f] - 1 per feature, in feature order. */
  readonly edges: Float64Array;
  /** Nodes per tree. */
  readonly treeNodeCounts: Int32Array;
  /** One code per node, per tree in the builder's depth-first order (see builder.ts). */
  readonly codes: Int16Array;
  /** Split bin per split node, same order. */
  readonly bins: Uint8Array;
  /** Class distributions of mixed leaves, nClasses floats each. */
  readonly mixed: Float32Array;
  /** Top-label calibration knots (see top-label.ts); empty = probabilities as voted. */
  readonly calibration: Float32Array;
  /**
   * Out-of-bag vote sums of these trees (nRows x nClasses), only on a part
   * fresh from fitTrees(); mergeForests() adds them up to fit the calibration.
   */
  readonly oob?: Float64Array;
}
