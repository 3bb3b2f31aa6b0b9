import type { DatabasePool } from "slonik";
import { modelBlob } from "../db/models.ts";
import { ModelLoadFailed } from "../errors.ts";
import { loadedModelBytes, loadModel, type LoadedModel } from "../ml/loaded-model.ts";

/** Loaded models kept in memory by model id. */
export interface ModelCache {
  /** A stored version, read from the database on first use only. */
  get(modelId: string): Promise<LoadedModel>;
  /** The model if it is already loaded (no promise, no wait): the hot path of Predict. */
  peek(modelId: string): LoadedModel | undefined;
  /** Puts a just-trained model in the cache (with the bytes it holds) so its first prediction needs no read. */
  put(modelId: string, model: LoadedModel, bytes: number): void;
  /** Models held. */
  readonly size: number;
  /** Approximate memory held, in bytes (what the models' forests hold, at least their serialized sizes). */
  readonly bytes: number;
  /** Lookups (get and successful peek) answered from memory, since start. */
  readonly hits: number;
  /** Lookups that read the database, since start. */
  readonly misses: number;
}

interface Entry {
  readonly forest: Promise<LoadedModel>;
  bytes: number;
  /** Set once the load has finished. */
  loaded?: LoadedModel;
}

/**
 * Model versions are immutable, so a cached model never goes stale; the
 * active version is looked up separately and only its model comes from here.
 * Concurrent first calls share one load. The cache is a least-recently-used
 * list bounded by memory: a loaded model counts what its forests report
 * holding (a kernel's linear memory), at least its serialized size.
 */
export function createModelCache(db: DatabasePool, maxBytes = 256 * 1024 * 1024): ModelCache {
  const entries = new Map<string, Entry>();
  let total = 0;
  let hits = 0;
  let misses = 0;

  function evict(): void {
    // Map keeps insertion order and get() re-inserts: the first key is the least recently used.
    for (const [id, entry] of entries) {
      if (total <= maxBytes || entries.size <= 1) break;
      entries.delete(id);
      total -= entry.bytes;
    }
  }
  function remember(modelId: string, entry: Entry): void {
    const old = entries.get(modelId);
    if (old !== undefined) {
      entries.delete(modelId);
      total -= old.bytes;
    }
    entries.set(modelId, entry);
    total += entry.bytes;
    evict();
  }
  async function load(modelId: string, entry: { bytes: number }): Promise<LoadedModel> {
    const row = await modelBlob(db, modelId);
    if (row === null) throw new ModelLoadFailed(modelId, "it is not in ml_models");
    if (row.model_data === null) throw new ModelLoadFailed(modelId, "it has no model_data");
    let forest: LoadedModel;
    try {
      forest = loadModel(row.model_format, new Uint8Array(row.model_data));
    } catch (err) {
      throw new ModelLoadFailed(modelId, `${row.model_format} ${row.version}: ${(err as Error).message}`, { cause: err });
    }
    if (entries.get(modelId) === entry) {
      (entry as Entry).loaded = forest;
      entry.bytes = loadedModelBytes(forest, row.model_data.byteLength);
      total += entry.bytes;
      evict();
    }
    return forest;
  }
  return {
    get(modelId) {
      const hit = entries.get(modelId);
      if (hit !== undefined) {
        hits++;
        entries.delete(modelId);
        entries.set(modelId, hit);
        return hit.forest;
      }
      misses++;
      const entry = { bytes: 0 } as { bytes: number; forest: Promise<LoadedModel> };
      entry.forest = load(modelId, entry);
      // A failed load is not cached: the next call retries.
      entry.forest.catch(() => {
        if (entries.get(modelId) === entry) {
          entries.delete(modelId);
          total -= entry.bytes;
        }
      });
      remember(modelId, entry);
      return entry.forest;
    },
    put(modelId, model, bytes) {
      remember(modelId, { forest: Promise.resolve(model), bytes, loaded: model });
    },
    peek(modelId) {
      const hit = entries.get(modelId);
      if (hit?.loaded === undefined) return undefined;
      hits++;
      entries.delete(modelId);
      entries.set(modelId, hit);
      return hit.loaded;
    },
    get size() {
      return entries.size;
    },
    get bytes() {
      return total;
    },
    get hits() {
      return hits;
    },
    get misses() {
      return misses;
    },
  };
}
