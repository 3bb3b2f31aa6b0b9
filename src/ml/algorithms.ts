import type { ForestAlgorithm } from "./forest.ts";
import { mlRandomForest } from "./ml-random-forest.ts";
import { ownForest } from "./own-forest.ts";

/** Every forest implementation a stored model may have been written by, by kind. */
export const forestAlgorithms: ReadonlyMap<string, ForestAlgorithm> = new Map([
  [ownForest.kind, ownForest],
  [mlRandomForest.kind, mlRandomForest],
]);

/** The implementation new models are trained with: ours, 100x+ faster than ml-random-forest (bench/README-forest.md). */
export const defaultForestKind: string = ownForest.kind;

/** Looks up an implementation; unknown kinds are a RangeError naming the kind. */
export function forestAlgorithm(kind: string): ForestAlgorithm {
  const algorithm = forestAlgorithms.get(kind);
  if (algorithm === undefined) throw new RangeError(`unknown forest kind "${kind}"`);
  return algorithm;
}
