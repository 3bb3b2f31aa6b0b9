import type { ForestAlgorithm } from "./forest.ts";
import { mlRandomForest } from "./ml-random-forest.ts";

/** Every forest implementation a stored model may have been written by, by kind. */
export const forestAlgorithms: ReadonlyMap<string, ForestAlgorithm> = new Map([[mlRandomForest.kind, mlRandomForest]]);

/** The implementation new models are trained with. */
export const defaultForestKind: string = mlRandomForest.kind;

/** Looks up an implementation; unknown kinds are a RangeError naming the kind. */
export function forestAlgorithm(kind: string): ForestAlgorithm {
  const algorithm = forestAlgorithms.get(kind);
  if (algorithm === undefined) throw new RangeError(`unknown forest kind "${kind}"`);
  return algorithm;
}
