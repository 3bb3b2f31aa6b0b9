import type { DatabasePool } from "slonik";
import type { ModelTypeName } from "../domain.ts";
import { activeModel, type ModelRow } from "../db/models.ts";

/** Which version is active for a user, without a database round trip per call. */
export interface ActiveModels {
  /** The active version (or null), from memory when known for less than the TTL. */
  get(userId: string, modelType: ModelTypeName): Promise<ModelRow | null>;
  /** The active version if known and fresh, without a promise; undefined when get() must ask the database. */
  peek(userId: string, modelType: ModelTypeName): ModelRow | null | undefined;
  /** Forgets what is known for a user, after this process (or, told by NOTIFY, another replica) activated a version. */
  invalidate(userId: string, modelType: ModelTypeName): void;
  /** Forgets everything (activations may have been missed while the listener was away). */
  clear(): void;
  /** Entries held. */
  readonly size: number;
  /** Lookups answered from memory (get, or a peek that knew), since start. */
  readonly hits: number;
  /** Lookups that asked the database, since start. */
  readonly misses: number;
}

interface Entry {
  readonly row: Promise<ModelRow | null>;
  readonly expires: number;
  /** Set once the lookup has answered. */
  resolved?: ModelRow | null;
}

/**
 * Why a TTL and not only invalidation: activations made by this process
 * invalidate at once, but another instance of the service (or an operator's
 * SQL) can activate a version too; the TTL bounds how long such a change
 * takes to be seen. Entries (including "no model") are kept at most
 * `maxEntries`, oldest first out.
 */
export function createActiveModels(db: DatabasePool, options: { ttlMs?: number; maxEntries?: number; clock?: () => number } = {}): ActiveModels {
  const ttl = options.ttlMs ?? 60_000;
  const maxEntries = options.maxEntries ?? 100_000;
  const clock = options.clock ?? Date.now;
  const entries = new Map<string, Entry>();
  let hits = 0;
  let misses = 0;
  return {
    get(userId, modelType) {
      const key = `${modelType}:${userId}`;
      const now = clock();
      const hit = entries.get(key);
      if (hit !== undefined && hit.expires > now) {
        hits++;
        return hit.row;
      }
      misses++;
      const row = activeModel(db, userId, modelType);
      const entry: Entry = { row, expires: now + ttl };
      entries.delete(key);
      entries.set(key, entry);
      row.then(
        (r) => (entry.resolved = r),
        () => undefined,
      );
      row.catch(() => {
        if (entries.get(key)?.row === row) entries.delete(key);
      });
      while (entries.size > maxEntries) entries.delete(entries.keys().next().value!);
      return row;
    },
    peek(userId, modelType) {
      const hit = entries.get(`${modelType}:${userId}`);
      const known = hit !== undefined && hit.expires > clock() ? hit.resolved : undefined;
      // A peek that does not know is followed by a get, which counts the lookup.
      if (known !== undefined) hits++;
      return known;
    },
    invalidate(userId, modelType) {
      entries.delete(`${modelType}:${userId}`);
    },
    clear() {
      entries.clear();
    },
    get size() {
      return entries.size;
    },
    get hits() {
      return hits;
    },
    get misses() {
      return misses;
    },
  };
}
