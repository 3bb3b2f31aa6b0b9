import type { DatabasePool } from "slonik";
import { modelBlob } from "../db/models.ts";
import { ModelLoadFailed } from "../errors.ts";
import { forestAlgorithm } from "../ml/algorithms.ts";
import type { Forest } from "../ml/forest.ts";

/** Fitted forests kept in memory by model id. */
export interface ModelCache {
  /** The forest of a stored version, read from the database on first use only. */
  get(modelId: string): Promise<Forest>;
  /** Puts a just-trained forest in the cache so its first prediction needs no read. */
  put(modelId: string, forest: Forest): void;
  readonly size: number;
}

/**
 * Model versions are immutable, so a cached forest never goes stale; the
 * active version is looked up per call and only its forest comes from here.
 * Concurrent first calls share one load.
 */
export function createModelCache(db: DatabasePool, maxEntries = 10_000): ModelCache {
  const forests = new Map<string, Promise<Forest>>();
  function remember(modelId: string, forest: Promise<Forest>): void {
    forests.delete(modelId);
    forests.set(modelId, forest);
    // Map keeps insertion order: the first key is the least recently used.
    while (forests.size > maxEntries) forests.delete(forests.keys().next().value!);
  }
  async function load(modelId: string): Promise<Forest> {
    const row = await modelBlob(db, modelId);
    if (row === null) throw new ModelLoadFailed(modelId, "it is not in ml_models");
    if (row.model_data === null) throw new ModelLoadFailed(modelId, "it has no model_data");
    try {
      return forestAlgorithm(row.model_format).load(new Uint8Array(row.model_data));
    } catch (err) {
      throw new ModelLoadFailed(modelId, `${row.model_format} ${row.version}: ${(err as Error).message}`, { cause: err });
    }
  }
  return {
    get(modelId) {
      let forest = forests.get(modelId);
      if (forest === undefined) {
        forest = load(modelId);
        // A failed load is not cached: the next call retries.
        forest.catch(() => forests.delete(modelId));
      }
      remember(modelId, forest);
      return forest;
    },
    put(modelId, forest) {
      remember(modelId, Promise.resolve(forest));
    },
    get size() {
      return forests.size;
    },
  };
}
