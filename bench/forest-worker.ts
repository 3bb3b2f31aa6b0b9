/** Piscina worker for bench/forest.ts: grows one range of trees, so the bench can fit one forest on two threads (the service fits each model's forest whole, in one training worker). */
import { fitTrees, type DenseMatrix, type ForestPart, type OwnForestOptions, type TreeRange } from "../src/ml/own-forest.ts";

export interface FitPartTask {
  readonly X: DenseMatrix;
  readonly y: Int32Array;
  readonly nClasses: number;
  readonly options: OwnForestOptions;
  readonly range: TreeRange;
}

export default function fitPart(task: FitPartTask): ForestPart {
  return fitTrees(task.X, task.y, task.nClasses, task.options, task.range);
}
