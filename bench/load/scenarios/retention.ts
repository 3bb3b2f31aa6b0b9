import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { createPool, sql, type DatabasePool } from "slonik";
import { z } from "zod";
import { PredictRequestSchema } from "../../../gen/ml/v1/ml_pb.ts";
import { DETACH_POLICY, ensurePredictionPartitions, partitionName, weekStart, type DetachPolicy } from "../../../src/db/retention.ts";
import { silentLogger } from "../../../src/logger.ts";
import { createMaintenance } from "../../../src/service/maintenance.ts";
import { startServiceProcess, type ServiceProcess } from "../../../test/support/process.ts";
import { mlClient, type MlClient } from "../client.ts";
import { cloneVersions } from "../clone-models.ts";
import { progress, requireService, type RunContext } from "../context.ts";
import { latenciesBetween, runH2loadParallel } from "../h2load.ts";
import { h2loadLayout } from "../h2load-layout.ts";
import { h2loadRow } from "../h2load-row.ts";
import { measureWindow, pgCpuNote } from "../measure.ts";
import { encodeBody, methodPath, predictRequest } from "../messages.ts";
import { percentiles } from "../stats.ts";

const DAY_MS = 86_400_000;
/** Expired weeks seeded, each a partition of its own. */
const EXPIRED_WEEKS = 4;
/** Answered share of the seeded rows (copied to model_predictions_answered before their week goes). */
const ANSWERED_PERCENT = 10;
/** Inactive versions added to each warm user beyond those kept, so pruning frees real blobs. */
const SURPLUS_VERSIONS = 10;

/**
 * Seeds `weeks` expired weekly partitions of `rows` predictions each (rows
 * shaped like the service's own, a tenth answered) ending `retentionDays`
 * ago, and surplus inactive versions for the warm users.
 */
async function seedExpired(pool: DatabasePool, users: readonly string[], rows: number, now: number, retentionDays: number): Promise<string[]> {
  const names: string[] = [];
  for (let w = 1; w <= EXPIRED_WEEKS; w++) {
    const start = weekStart(now - retentionDays * DAY_MS) - w * 7 * DAY_MS;
    await pool.connect((conn) => ensurePredictionPartitions(conn, start, 0));
    await pool.query(sql.unsafe`
      INSERT INTO model_predictions (prediction_id, model_id, user_id, prediction_type, prediction_value, confidence_score, was_correct, feedback_at, created_at)
      SELECT gen_random_uuid(), t.model_id, t.user_id, t.prediction_type, t.prediction_value, t.confidence_score,
        CASE WHEN g % 100 < ${ANSWERED_PERCENT} THEN g % 2 = 0 END,
        CASE WHEN g % 100 < ${ANSWERED_PERCENT} THEN ${new Date(start).toISOString()}::timestamptz END,
        ${new Date(start).toISOString()}::timestamptz + (g * interval '1 second') * (604799.0 / ${rows})
      FROM generate_series(1, ${rows}) AS g,
        LATERAL (SELECT * FROM model_predictions WHERE user_id = ${users[0]!} ORDER BY created_at DESC LIMIT 1) AS t`);
    const stored = await pool.oneFirst(sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM ${sql.identifier([partitionName(start)])}`);
    if (stored !== rows) throw new Error(`retention: seeded ${stored} rows into ${partitionName(start)}, expected ${rows}`);
    names.push(partitionName(start));
  }
  await cloneVersions(pool, users, SURPLUS_VERSIONS);
  await pool.query(sql.unsafe`ANALYZE model_predictions`);
  return names;
}

/** Waits (at most 10 s) until the prediction log has written a row of `userId`. */
async function waitForRow(pool: DatabasePool, userId: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (await pool.exists(sql.unsafe`SELECT 1 FROM model_predictions WHERE user_id = ${userId}`)) return;
    await sleep(100);
  }
  throw new Error(`retention: no prediction row of ${userId} after 10 s`);
}

/** How a partition was detached before DETACH_POLICY: all answered rows copied under its lock, one DETACH waiting up to 2 s (measured beside it in the same run). */
const BEFORE_ISSUE_13: DetachPolicy = { copyAhead: false, lockTimeoutMs: 2_000, attempts: 1, pauseMs: 0 };

/**
 * The passes measured: on the default acknowledgement, and on durable (Predict
 * waits for its row's INSERT, which a lock on the table holds up) with the
 * DETACH's wait as it was and as it is, one after the other.
 */
const CASES = [
  { ack: "memory", detach: DETACH_POLICY, label: "memory ack" },
  { ack: "durable", detach: BEFORE_ISSUE_13, label: "durable ack, before (copy under lock, DETACH waits ≤ 2 s)" },
  { ack: "durable", detach: DETACH_POLICY, label: "durable ack, now (copy ahead, DETACH waits ≤ 100 ms ×3)" },
] as const;

/**
 * retention: the maintenance pass (expired weekly partitions dropped after
 * their answered rows are kept, surplus model blobs freed) run during a
 * Predict load on one service, on a database seeded with `EXPIRED_WEEKS`
 * expired partitions of 200,000 rows each. Predict p99 while the pass ran
 * against the same load idle just before; once on the run's service
 * (PREDICTION_ACK=memory, the default) and twice on a second process with
 * PREDICTION_ACK=durable (the DETACH waiting as it did, then as it does),
 * each with a fresh seed.
 */
export async function runRetention(ctx: RunContext): Promise<void> {
  const main = requireService(ctx, "retention");
  if (main.db.pool === null) throw new Error("retention: needs PostgreSQL (--embedded cannot be read while the service runs)");
  const details: Record<string, unknown> = {};
  let durable: ServiceProcess | null = null;
  try {
    for (const [i, c] of CASES.entries()) {
      if (c.ack === "durable" && durable === null) {
        durable = await startServiceProcess({ ...main.db.serviceEnv, PREDICTION_ACK: "durable", PREDICTION_SPILL_DIR: join(ctx.tmp, "retention-spill") });
      }
      const target = c.ack === "durable" && durable !== null ? durable : main.service;
      details[c.label] = await measureRetention(ctx, main.db.pool, target, mlClient(target.port), `${i}`, c.label, c.detach);
    }
  } finally {
    await durable?.stop();
  }
  ctx.details["retention"] = details;
}

/** Seeds, measures idle, runs the pass under the same load; pushes two rows. */
async function measureRetention(
  ctx: RunContext,
  pool: DatabasePool,
  service: ServiceProcess,
  client: MlClient,
  key: string,
  label: string,
  detach: DetachPolicy,
): Promise<Record<string, unknown>> {
  const db = ctx.db!;
  const pid = service.child.pid!;
  const { duration, warmup, connections, quick } = ctx.options;
  const rows = quick ? 20_000 : 200_000;
  const retentionDays = 90;
  const now = Date.now();
  progress(`retention (${label}): seeding ${EXPIRED_WEEKS} expired weekly partitions of ${rows} rows and ${SURPLUS_VERSIONS} surplus versions per warm user`);
  const seedStarted = performance.now();
  // The seeded rows copy a real one (its model, its answer's shape): one Predict, then wait for its row.
  await client.predict(predictRequest(ctx.warmUsers[0]!));
  await waitForRow(pool, ctx.warmUsers[0]!);
  const partitions = await seedExpired(pool, ctx.warmUsers, rows, now, retentionDays);
  const seedS = (performance.now() - seedStarted) / 1000;
  const users = Array.from({ length: connections }, (_, i) => ctx.warmUsers[i % ctx.warmUsers.length]!);
  const bodies = users.map((u, i) => encodeBody(PredictRequestSchema, predictRequest(u, i), "grpc"));
  const timing = { durationS: duration, warmupS: warmup };
  const layout = { ...ctx, service };

  const idle = await measureWindow(pid, db, warmup, () =>
    runH2loadParallel(h2loadLayout(layout, `retention-${key}-idle`, service.port, methodPath("Predict"), "grpc", bodies, timing)),
  );
  const idleRow = h2loadRow(`retention, ${label} (idle)`, "h2load, gRPC", idle, ctx.rawCallsPerS, null, [pgCpuNote(idle, idle.result.status2xx)]);

  // The pass on a pool of its own that times every statement, to see which step a slow pass spends its time in.
  const statements: { sql: string; ms: number }[] = [];
  const timed = await createPool(db.serviceEnv["DATABASE_URL"]!, {
    maximumPoolSize: 2,
    interceptors: [
      {
        name: "retention-statement-timing",
        afterQueryExecution: (context, query) => {
          const ms = Number(process.hrtime.bigint() - BigInt(context.queryInputTime)) / 1e6;
          statements.push({ sql: query.sql.replaceAll(/\s+/g, " ").trim(), ms });
          return null;
        },
      },
    ],
  });
  const maintenance = createMaintenance(
    timed,
    { predictionRetentionDays: retentionDays, weeksAhead: 2, keepVersions: 5, keepActiveDays: 30, intervalMs: 3_600_000, detach },
    silentLogger,
  );
  let passStartMs = 0;
  let passEndMs = 0;
  const pass: { ran: boolean | string; walMiB: number } = { ran: false, walMiB: 0 };
  const busy = await measureWindow(pid, db, warmup, async () => {
    const load = runH2loadParallel(h2loadLayout(layout, `retention-${key}-busy`, service.port, methodPath("Predict"), "grpc", bodies, timing));
    await sleep(warmup * 1000);
    progress(`retention (${label}): maintenance pass started under load`);
    const walBefore = await pool.oneFirst(sql.type(z.object({ lsn: z.string() }))`SELECT pg_current_wal_lsn()::text AS lsn`);
    passStartMs = Date.now();
    pass.ran = await maintenance.runOnce(now).catch((err: unknown) => String(err));
    passEndMs = Date.now();
    // WAL written meanwhile (the pass's and the load's): every durable commit flushes the WAL written before it.
    pass.walMiB = await pool.oneFirst(sql.type(z.object({ mib: z.number() }))`
      SELECT (pg_wal_lsn_diff(pg_current_wal_lsn(), ${walBefore}::pg_lsn) / 1048576)::float8 AS mib`);
    return load;
  });
  await timed.end();
  const slowest = [...statements]
    .sort((a, b) => b.ms - a.ms)
    .slice(0, 5)
    .map((st) => `${st.ms.toFixed(0)} ms ${st.sql.slice(0, 60)}`);
  // The copy made under the partition's lock (the one without a day's range), which every Feedback waits out.
  const underLock = statements
    .filter((st) => /^INSERT INTO model_predictions_answered .* WHERE was_correct IS NOT NULL AND (TRUE|\(feedback_at) /.test(st.sql))
    .map((st) => st.ms);
  const lockedCopy = underLock.length === 0 ? "none" : `${Math.min(...underLock).toFixed(0)}-${Math.max(...underLock).toFixed(0)} ms a week`;
  const left = await pool.anyFirst(sql.type(z.object({ name: z.string() }))`
    SELECT c.relname::text AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE c.relname = ANY(${sql.array(partitions, "text")})`);
  const passS = Math.max(0.001, (passEndMs - passStartMs) / 1000);
  const duringMs = latenciesBetween(busy.result, passStartMs, passEndMs);
  const during = percentiles(duringMs);
  const ratio = during.p99 / idleRow.p99Ms;
  const whole = h2loadRow(`retention, ${label} (maintenance pass)`, "h2load, gRPC", busy, ctx.rawCallsPerS, null);
  ctx.rows.push(idleRow, {
    ...whole,
    calls: during.count,
    callsPerS: during.count / passS,
    p50Ms: during.p50,
    p95Ms: during.p95,
    p99Ms: during.p99,
    shareOfRaw: null,
    notes: [
      `p99 idle ${idleRow.p99Ms.toFixed(2)} ms → while the pass ran ${during.p99.toFixed(2)} ms: ${ratio.toFixed(2)}× (target ≤ 1.5×: ${ratio <= 1.5 ? "met" : "MISSED"})`,
      `pass ${pass.ran === true ? "ran" : `did not run (${String(pass.ran)})`} in ${passS.toFixed(2)} s: dropped ${EXPIRED_WEEKS - left.length} of ${EXPIRED_WEEKS} expired partitions of ${rows} rows ` +
        `(${ANSWERED_PERCENT}% answered, kept apart) and freed surplus model blobs; seeding took ${seedS.toFixed(1)} s; ` +
        `latencies are the calls that started and ended during the pass (${during.count}; whole window p99 ${whole.p99Ms.toFixed(2)} ms)`,
      `copy of answered rows under the partition's lock: ${lockedCopy}; slowest statements of the pass: ${slowest.join("; ")}; WAL written while it ran ${pass.walMiB.toFixed(1)} MiB; slowest call during it ${Math.max(0, ...duringMs).toFixed(0)} ms`,
      ...whole.notes,
    ],
  });
  return {
    rowsPerWeek: rows,
    weeks: EXPIRED_WEEKS,
    passS,
    idleP99Ms: idleRow.p99Ms,
    passP99Ms: during.p99,
    p99Ratio: ratio,
    partitionsLeft: left,
    slowest,
    walMiB: pass.walMiB,
  };
}
