import type { DatabasePool } from "slonik";
import { modelBlob } from "../db/models.ts";
import { ModelLoadFailed } from "../errors.ts";
import { forestAlgorithm } from "../ml/algorithms.ts";
import type { Forest } from "../ml/forest.ts";

/** Fitted forests kept in memory by model id. */
export interface ModelCache {
  /** The forest of a stored version, read from the database on first use only. */
  get(modelId: string): Promise<Forest>;
  /** Puts a just-trained forest in the cache (with its serialized size) so its first prediction needs no read. */
  put(modelId: string, forest: Forest, bytes: number): void;
  /** Forests held. */
  readonly size: number;
  /** Approximate memory held, in bytes (serialized sizes of the cached forests). */
  readonly bytes: number;
}

interface Entry {
  readonly forest: Promise<Forest>;
  bytes: number;
}

/**
 * Model versions are immutable, so a cached forest never goes stale; the
 * active version is looked up separately and only its forest comes from here.
 * Concurrent first calls share one load. The cache is a least-recently-used
 * list bounded by memory: a loaded forest takes about its serialized size.
 */
export function createModelCache(db: DatabasePool, maxBytes = 256 * 1024 * 1024): ModelCache {
  const entries = new Map<string, Entry>();
  let total = 0;

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
  async function load(modelId: string, entry: { bytes: number }): Promise<Forest> {
    const row = await modelBlob(db, modelId);
    if (row === null) throw new ModelLoadFailed(modelId, "it is not in ml_models");
    if (row.model_data === null) throw new ModelLoadFailed(modelId, "it has no model_data");
    let forest: Forest;
    try {
      forest = forestAlgorithm(row.model_format).load(new Uint8Array(row.model_data));
    } catch (err) {
      throw new ModelLoadFailed(modelId, `${row.model_format} ${row.version}: ${(err as Error).message}`, { cause: err });
    }
    if (entries.get(modelId) === entry) {
      entry.bytes = row.model_data.byteLength;
      total += entry.bytes;
      evict();
    }
    return forest;
  }
  return {
    get(modelId) {
      const hit = entries.get(modelId);
      if (hit !== undefined) {
        entries.delete(modelId);
        entries.set(modelId, hit);
        return hit.forest;
      }
      const entry = { bytes: 0 } as { bytes: number; forest: Promise<Forest> };
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
    put(modelId, forest, bytes) {
      remember(modelId, { forest: Promise.resolve(forest), bytes });
    },
    get size() {
      return entries.size;
    },
    get bytes() {
      return total;
    },
  };
}
