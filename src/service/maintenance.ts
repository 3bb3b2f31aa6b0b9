import { sql, type DatabasePool } from "slonik";
import { DETACH_POLICY, dropExpiredPredictions, ensurePredictionPartitions, pruneModelVersions, trimTaskChoices, type DetachPolicy } from "../db/retention.ts";
import type { Logger } from "../logger.ts";

/** How much is kept, and how often maintenance runs. */
export interface MaintenanceSettings {
  /** Days a prediction is kept (answered ones are kept apart, for good). */
  readonly predictionRetentionDays: number;
  /** Weekly partitions created ahead of need. */
  readonly weeksAhead: number;
  /** Newest versions per user and type that keep their model data (besides the active one). */
  readonly keepVersions: number;
  /** Versions active within this many days keep their model data (a rollback target). */
  readonly keepActiveDays: number;
  /** Between two passes. */
  readonly intervalMs: number;
  /** How an expired partition's DETACH waits for its lock (default DETACH_POLICY; the load harness compares others). */
  readonly detach?: DetachPolicy;
}

/** Picks kept per user: more than the ranker ever reads (40 for the user, 100 for the population). */
export const TASK_CHOICES_KEPT = 200;

/** Arbitrary but fixed: one replica at a time runs a pass; the others skip it. */
const MAINTENANCE_LOCK = 7_130_014;

/** The maintenance schedule. */
export interface Maintenance {
  /** One pass now (the schedule calls it; so do tests); false when another replica holds the lock. */
  runOnce(now?: number): Promise<boolean>;
  /** A pass now, then one every interval. */
  start(): void;
  /** Stops the schedule and waits for a pass under way. */
  stop(): Promise<void>;
}

/**
 * Keeps data bounded as users grow: partitions ahead, expired weeks dropped,
 * unneeded model blobs freed. One pass at start and then every interval; a
 * session advisory lock makes replicas take turns, not repeat the work.
 */
export function createMaintenance(db: DatabasePool, settings: MaintenanceSettings, log: Logger): Maintenance {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  async function runOnce(now = Date.now()): Promise<boolean> {
    return db.connect(async (conn) => {
      const got = await conn.oneFirst(sql.unsafe`SELECT pg_try_advisory_lock(${MAINTENANCE_LOCK})`);
      if (got !== true) return false;
      try {
        // On the connection that holds the lock (the embedded database has only one). Each step on its own:
        // a partition that could not be made this time must not stop retention or pruning.
        const step = async <T>(what: string, run: () => Promise<T>): Promise<T | null> => {
          try {
            return await run();
          } catch (err) {
            log.error(`maintenance: ${what} failed; the next pass tries again`, { error: err instanceof Error ? err.message : String(err) });
            return null;
          }
        };
        const created = await step("creating partitions", () => ensurePredictionPartitions(conn, now, settings.weeksAhead));
        const retention = await step("dropping expired predictions", () =>
          dropExpiredPredictions(conn, now, settings.predictionRetentionDays, settings.detach ?? DETACH_POLICY),
        );
        const freed = await step("freeing model data", () => pruneModelVersions(conn, settings.keepVersions, settings.keepActiveDays));
        const picks = await step("trimming task picks", () => trimTaskChoices(conn, TASK_CHOICES_KEPT));
        log.info("maintenance pass", { createdPartitions: created, ...(retention ?? {}), freedModelBlobs: freed, deletedTaskPicks: picks });
        return true;
      } finally {
        await conn.query(sql.unsafe`SELECT pg_advisory_unlock(${MAINTENANCE_LOCK})`);
      }
    });
  }
  let running: Promise<unknown> | null = null;
  const run = () => {
    // A pass still under way (a slow drop) is not doubled.
    if (stopped || running !== null) return;
    running = runOnce()
      .catch((err: unknown) => log.error("maintenance pass failed", { error: err instanceof Error ? err.message : String(err) }))
      .finally(() => (running = null));
  };
  return {
    runOnce,
    start() {
      run();
      timer = setInterval(run, settings.intervalMs);
      timer.unref();
    },
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running;
    },
  };
}
