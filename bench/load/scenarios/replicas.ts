import { setTimeout as sleep } from "node:timers/promises";
import { join } from "node:path";
import { sql, type DatabasePool } from "slonik";
import { z } from "zod";
import { ModelType, PredictRequestSchema } from "../../../gen/ml/v1/ml_pb.ts";
import { POPULATION_SCHEDULE_QUEUE, TRAINING_QUEUE } from "../../../src/service/training-queue.ts";
import { lossRows } from "../../faults/consistency.ts";
import { codeOf, isBugCode, startMix } from "../../faults/mix.ts";
import { codeList, count } from "../../faults/report.ts";
import { progress, requireService, type RunContext } from "../context.ts";
import { startFleet, type Fleet } from "../fleet.ts";
import { runH2loadParallel } from "../h2load.ts";
import { h2loadLayout } from "../h2load-layout.ts";
import { h2loadRow } from "../h2load-row.ts";
import { measureWindow, pgCpuNote } from "../measure.ts";
import { encodeBody, methodPath, predictRequest, upsertTasksRequest } from "../messages.ts";
import type { ResultRow } from "../report.ts";
import { startService } from "../service.ts";
import { percentiles } from "../stats.ts";
import { ingestForUsers, trainUsers } from "../users.ts";

const REPLICAS = 3;
/** Users whose two versions the activations alternate between; nothing else trains them during the run. */
const ACTIVATION_USERS = 4;
/** A replica that has not served the new version this long after the activation is counted as this long. */
const PROPAGATION_LIMIT_MS = 10_000;
/** Every minute: with 3 replicas, each occurrence must be sent once (pg-boss's cron), not once per replica. */
const EVERY_MINUTE = "* * * * *";

/**
 * The replicas' settings: the durable acknowledgement (so a kill -9 may lose
 * nothing answered: the target here), no re-blends or growth fits (they would
 * activate versions of the activation users behind the harness's back; the
 * schedule still fits the population), short fits on a 2-core host.
 */
const REPLICA_ENV = {
  PREDICTION_ACK: "durable",
  REBLEND_MAX_USERS: "0",
  POPULATION_AUTO_TRAIN: "0",
  TRAIN_THREADS: "1",
  N_ESTIMATORS: "30",
};

const JobCount = z.object({ trigger: z.string(), state: z.string(), n: z.number() });

/**
 * replicas: 3 replicas of the service on the run's database (the single
 * service is stopped meanwhile, so the fleet is exactly three), a client
 * balancing round robin over the ones up. Predict-only with h2load on 1
 * replica and then on 3 (same streams), with the CPU of every PostgreSQL
 * process per call; then a mixed load (Predict, Feedback, IngestTrainingData,
 * SuggestTasks) during which 100 activations are made on random replicas and
 * timed until every other replica serves them, one replica is killed with
 * SIGKILL and restarted, another stopped with SIGTERM and restarted, and the
 * population schedule fires every minute: acknowledged against stored rows,
 * codes, and schedule jobs per occurrence at the end.
 */
export async function runReplicas(ctx: RunContext): Promise<void> {
  const { service, db } = requireService(ctx, "replicas");
  if (db.pool === null) throw new Error("replicas: needs PostgreSQL (the embedded database serves one process)");
  const pool = db.pool;
  await service.stop();
  ctx.service = null;
  ctx.client = null;
  progress(`replicas: starting ${REPLICAS} replicas on ${db.description}`);
  const fleet = await startFleet(REPLICAS, { ...db.serviceEnv, ...REPLICA_ENV }, join(ctx.tmp, "replicas-spill"));
  try {
    ctx.rows.push(...(await predictOneVsAll(ctx, fleet)));
    ctx.rows.push(await mixedWithFaults(ctx, fleet, pool));
  } finally {
    await fleet.stop();
    await startService(ctx);
  }
}

/** Predict-only, the same h2load streams on replica 0 alone and then spread over all replicas. */
async function predictOneVsAll(ctx: RunContext, fleet: Fleet): Promise<ResultRow[]> {
  const { duration, warmup, streams } = ctx.options;
  const bodies = ctx.warmUsers.map((u, i) => encodeBody(PredictRequestSchema, predictRequest(u, i), "grpc"));
  const timing = { durationS: duration, warmupS: warmup };
  const ports = fleet.ports() as number[];
  const one = { ...ctx, service: null, options: { ...ctx.options, connections: REPLICAS } };
  const each = { ...ctx, service: null, options: { ...ctx.options, connections: 1 } };
  const rows: ResultRow[] = [];
  const perS: number[] = [];
  for (const spread of [1, REPLICAS]) {
    progress(`replicas: Predict on ${spread} replica(s), ${REPLICAS} h2load processes × ${streams} streams`);
    const specs =
      spread === 1
        ? h2loadLayout(one, "replicas-one", ports[0]!, methodPath("Predict"), "grpc", bodies, timing)
        : ports.flatMap((port, i) => h2loadLayout(each, `replicas-all-${i}`, port, methodPath("Predict"), "grpc", [bodies[i % bodies.length]!], timing));
    const pids = spread === 1 ? fleet.pids().slice(0, 1) : fleet.pids();
    const run = await measureWindow(pids, ctx.db, warmup, () => runH2loadParallel(specs));
    const row = h2loadRow(
      `replicas: Predict on ${spread} of ${REPLICAS} replicas`,
      `h2load ${REPLICAS} × 1 conn × ${streams} streams, gRPC`,
      run,
      ctx.rawCallsPerS,
      null,
      [pgCpuNote(run, run.result.status2xx), "server µs/call sums the CPU of the replicas that took calls"],
    );
    perS.push(row.callsPerS);
    rows.push(row);
  }
  const ratio = `Predict calls/s: 1 replica ${perS[0]!.toFixed(0)}, ${REPLICAS} replicas ${perS[1]!.toFixed(0)} (${(perS[1]! / perS[0]!).toFixed(2)}×, same streams, same host)`;
  rows[1] = { ...rows[1]!, notes: [ratio, ...rows[1]!.notes] };
  ctx.details["replicasPredict"] = { oneReplicaPerS: perS[0], allReplicasPerS: perS[1] };
  return rows;
}

/** Makes every schedule of the population queue fire each minute (the replicas write their own cron at start, so this follows every start). */
async function everyMinute(pool: DatabasePool): Promise<void> {
  await pool.query(sql.unsafe`UPDATE pgboss.schedule SET cron = ${EVERY_MINUTE}, updated_on = now() WHERE name = ${POPULATION_SCHEDULE_QUEUE}`);
}

/** The two stored versions of each activation user, and which one is active now. */
async function prepareActivationUsers(ctx: RunContext, fleet: Fleet): Promise<{ user: string; versions: [string, string]; active: string }[]> {
  const client = fleet.client(0);
  const users = Array.from({ length: ACTIVATION_USERS }, (_, i) => `load-${ctx.tag}-act-${i}`);
  await ingestForUsers(client, users, 60);
  await trainUsers(client, users, "activation users v1");
  await ingestForUsers(client, users, 40);
  await trainUsers(client, users, "activation users v2");
  return Promise.all(
    users.map(async (user, i) => {
      await client.upsertTasks(upsertTasksRequest(user, 5, 900 + i));
      const models = (await client.listModels({ userId: user, modelType: ModelType.ENERGY_PREDICTION })).models;
      if (models.length < 2) throw new Error(`replicas: ${user} has ${models.length} versions, expected 2`);
      return { user, versions: [models[0]!.modelId, models[1]!.modelId] as [string, string], active: models.find((m) => m.isActive)!.modelId };
    }),
  );
}

/** The mixed load across the fleet with activations, a kill -9, a SIGTERM and the population schedule; one result row. */
async function mixedWithFaults(ctx: RunContext, fleet: Fleet, pool: DatabasePool): Promise<ResultRow> {
  const quick = ctx.options.quick;
  const phaseS = quick ? 40 : 90;
  const activations = quick ? 30 : 100;
  const S = "replicas: mixed load, activations, kill -9, SIGTERM";
  progress("replicas: preparing activation users (two versions each)");
  const actUsers = await prepareActivationUsers(ctx, fleet);
  const mixUsers = ctx.warmUsers.slice(0, 8);
  await everyMinute(pool);
  const phaseStart = await pool.oneFirst(sql.type(z.object({ t: z.string() }))`SELECT now()::text AS t`);
  progress(`replicas: ${phaseS} s of mixed load over ${REPLICAS} replicas with ${activations} activations, a kill -9 and a SIGTERM`);
  const t0 = performance.now();
  const mix = startMix((lane) => fleet.pick(lane), mixUsers, { clients: 2 * REPLICAS, tag: `load-${ctx.tag}-rep`, kind: "mixed" });
  const { tally } = mix;
  const otherCodes = new Map<string, number>();
  const recordCode = (rpc: string, err: unknown) => count(otherCodes, `${rpc} ${codeOf(err)}`);

  // Activations, one after the other, spread over the first two thirds of the phase.
  const propagationMs: number[] = [];
  let activationFailures = 0;
  const gapMs = ((phaseS * 1000 * 2) / 3 / activations) | 0;
  const activating = (async () => {
    for (let k = 0; k < activations; k++) {
      const target = actUsers[k % actUsers.length]!;
      const next = target.versions[0] === target.active ? target.versions[1] : target.versions[0];
      const up = Array.from({ length: fleet.size }, (_, i) => i).filter((i) => fleet.isUp(i));
      const on = up[Math.floor(Math.random() * up.length)]!;
      try {
        await fleet.client(on).activateModel({ modelId: next }, { timeoutMs: 5_000 });
      } catch (err) {
        // The replica went down under the call: the same activation again elsewhere.
        recordCode("ActivateModel", err);
        activationFailures++;
        k--;
        await sleep(100);
        continue;
      }
      target.active = next;
      const activatedAt = performance.now();
      const others = up.filter((i) => i !== on);
      const seen = await Promise.all(
        others.map(async (i) => {
          for (let n = 0; ; n++) {
            if (!fleet.isUp(i)) return null; // taken down meanwhile: not a replica that could serve it
            if (performance.now() - activatedAt > PROPAGATION_LIMIT_MS) return PROPAGATION_LIMIT_MS;
            try {
              const answer = await fleet.client(i).predict(predictRequest(target.user, k + n), { timeoutMs: 5_000 });
              tally.predictionIds.push(answer.predictionId);
              tally.predictionAckedAt.push(performance.now());
              if (answer.modelId === next) return performance.now() - activatedAt;
            } catch (err) {
              recordCode("Predict (propagation poll)", err);
            }
            await sleep(5);
          }
        }),
      );
      const times = seen.filter((ms): ms is number => ms !== null);
      if (times.length > 0) propagationMs.push(Math.max(...times));
      await sleep(gapMs);
    }
  })();

  // kill -9 at a quarter, SIGTERM at a half; each restarted (the kill after 2 s down, as a supervisor would).
  const faults: string[] = [];
  // What the mix's callers saw in the 5 s after a kill or stop: calls in flight on that replica are cut.
  const cut = (at: number) => {
    const failed = new Map<string, number>();
    for (const e of tally.events) if (e.t >= at && e.t < at + 5_000 && e.code !== "OK") count(failed, `${e.rpc} ${e.code}`);
    return failed.size === 0 ? "no call failed in the 5 s after" : `calls failed in the 5 s after: ${codeList(failed)}`;
  };
  const cutAt: number[] = [];
  const faulting = (async () => {
    await sleep(phaseS * 250);
    const killAt = performance.now();
    cutAt.push(killAt);
    await fleet.kill9(1);
    progress("replicas: replica 1 killed (SIGKILL)");
    await sleep(2_000);
    const killRestartS = await fleet.restart(1);
    await everyMinute(pool);
    faults.push(`replica 1: SIGKILL at ${((killAt - t0) / 1000).toFixed(1)} s, down 2 s, restarted (listening after ${killRestartS.toFixed(1)} s)`);
    await sleep(Math.max(0, t0 + phaseS * 500 - performance.now()));
    const termAt = performance.now();
    cutAt.push(termAt);
    progress("replicas: replica 2 stopped (SIGTERM)");
    const { code, seconds } = await fleet.terminate(2);
    const termRestartS = await fleet.restart(2);
    await everyMinute(pool);
    faults.push(
      `replica 2: SIGTERM at ${((termAt - t0) / 1000).toFixed(1)} s, exited with ${code} after ${seconds.toFixed(2)} s, restarted (listening after ${termRestartS.toFixed(1)} s)`,
    );
  })();

  await Promise.all([activating, faulting, sleep(phaseS * 1000)]);
  const phaseEnd = performance.now();
  await mix.stop();
  progress("replicas: load stopped; counting what was acknowledged against what is stored");
  for (const [i, at] of cutAt.entries()) faults[i] = `${faults[i]}; ${cut(at)}`;
  const losses = await lossRows(pool, S, tally, 60_000);
  const schedule = await scheduleRuns(pool, phaseStart);
  const oks = tally.events.filter((e) => e.code === "OK" && e.t <= phaseEnd);
  const lat = percentiles(oks.map((e) => e.ms));
  const codes = new Map<string, number>();
  for (const e of tally.events) count(codes, e.code === "OK" ? "OK" : `${e.rpc} ${e.code}`);
  const bugs = [...codes.keys(), ...otherCodes.keys()].some((k) => isBugCode(k.split(" ").at(-1)!)) || fleet.bugLogs().length > 0;
  const p = percentiles(propagationMs);
  const maxMs = propagationMs.length === 0 ? Number.NaN : Math.max(...propagationMs);
  const predictionsLost = losses[0]!.pass === false;
  const notes = [
    `activation seen by every other replica (${propagationMs.length} activations on a random replica, Predict polled every 5 ms on the others): ` +
      `p50 ${p.p50.toFixed(0)} ms, p99 ${p.p99.toFixed(0)} ms, max ${maxMs.toFixed(0)} ms (target p99 ≤ 1,000 ms: ${p.p99 <= 1_000 ? "met" : "MISSED"}); ` +
      `${activationFailures} ActivateModel calls failed and were repeated on another replica`,
    ...losses.map((r) => `${r.figure}: ${r.value} (${r.pass ? "0 lost" : "LOST"})`),
    `codes of the mixed load: ${codeList(codes)}; other calls: ${otherCodes.size === 0 ? "all OK" : codeList(otherCodes)}; Internal/Unknown (answers or service logs): ${bugs ? "SEEN" : "none"}`,
    ...faults,
    `population schedule (every minute during the run): ${schedule.occurrences} occurrences sent as ${schedule.scheduleJobs} jobs (${schedule.scheduleJobs === schedule.occurrences ? "once each" : "NOT once each"}), ` +
      `population fits they started: ${schedule.populationFits}; training jobs by trigger and state: ${schedule.byTrigger}`,
    `replicas ran with ${Object.entries(REPLICA_ENV)
      .map(([k, v]) => `${k}=${v}`)
      .join(
        " ",
      )}; ${2 * REPLICAS} callers (faults harness mix: Predict, Feedback, IngestTrainingData of a new user, SuggestTasks in turn), round robin over the replicas up`,
  ];
  ctx.details["replicas"] = {
    propagationMs: { p50: p.p50, p99: p.p99, max: maxMs, count: propagationMs.length, all: propagationMs.map((x) => Math.round(x)) },
    losses,
    codes: Object.fromEntries(codes),
    otherCodes: Object.fromEntries(otherCodes),
    faults,
    schedule,
    bugLogs: fleet.bugLogs().slice(0, 10),
  };
  const calls = oks.length;
  const acked = tally.predictionIds.length;
  const stored = Number(losses[0]!.value.split(" / ")[1]);
  return {
    scenario: S,
    tool: `connect-es clients, ${2 * REPLICAS} callers`,
    calls,
    callsPerS: calls / ((phaseEnd - t0) / 1000),
    p50Ms: lat.p50,
    p95Ms: lat.p95,
    p99Ms: lat.p99,
    errors: tally.events.filter((e) => e.code !== "OK").length,
    serverCpuUsPerCall: null,
    dbCpuUsPerCall: null,
    shareOfRaw: null,
    predictions: { successes: acked, exact: true, rowsDelta: predictionsLost ? stored : acked },
    notes,
  };
}

/** Population-schedule jobs since the phase began (one per occurrence is the point), and training jobs by trigger. */
async function scheduleRuns(
  pool: DatabasePool,
  since: string,
): Promise<{ occurrences: number; scheduleJobs: number; populationFits: string; byTrigger: string }> {
  // The last occurrence's job may still be waiting for its 5 s poll or running its fit.
  for (let i = 0; i < 40; i++) {
    const open = await pool.oneFirst(sql.type(z.object({ n: z.number() }))`
      SELECT count(*)::int AS n FROM pgboss.job WHERE name = ${POPULATION_SCHEDULE_QUEUE} AND created_on >= ${since}::timestamptz AND state < 'completed'`);
    if (open === 0) break;
    await sleep(1_000);
  }
  const sched = await pool.one(sql.type(z.object({ jobs: z.number(), minutes: z.number() }))`
    SELECT count(*)::int AS jobs, count(DISTINCT date_trunc('minute', created_on))::int AS minutes
    FROM pgboss.job WHERE name = ${POPULATION_SCHEDULE_QUEUE} AND created_on >= ${since}::timestamptz`);
  const jobs = await pool.any(sql.type(JobCount)`
    SELECT (CASE WHEN data->>'userId' = '' THEN 'population ' ELSE '' END) || (data->>'trigger') AS trigger, state::text AS state, count(*)::int AS n
    FROM pgboss.job WHERE name = ${TRAINING_QUEUE} AND created_on >= ${since}::timestamptz GROUP BY 1, 2 ORDER BY 1, 2`);
  return {
    occurrences: sched.minutes,
    scheduleJobs: sched.jobs,
    populationFits:
      jobs
        .filter((j) => j.trigger.startsWith("population "))
        .map((j) => `${j.trigger.slice("population ".length)} ${j.state} ${j.n}`)
        .join(", ") || "none",
    byTrigger: jobs.map((j) => `${j.trigger} ${j.state} ${j.n}`).join(", ") || "none",
  };
}
