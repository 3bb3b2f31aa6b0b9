import { ModelType, PredictRequestSchema } from "../../../gen/ml/v1/ml_pb.ts";
import { cloneActiveModel } from "../clone-models.ts";
import { exitSignal, progress, requireService, serviceAlive, serviceExit, type RunContext } from "../context.ts";
import { seededRandom } from "../../../src/ml/evaluation.ts";
import { generateLoad, type LoadRequest } from "../generator.ts";
import { generatorRow } from "../generator-row.ts";
import { measureWindow, settledPredictionCount } from "../measure.ts";
import { encodeBody, methodPath, predictRequest } from "../messages.ts";
import { processRssMiB } from "../proc.ts";
import { guardRss } from "../rss-guard.ts";
import { percentiles } from "../stats.ts";
import { ingestForUsers, trainUsers } from "../users.ts";

const SAMPLES_PER_USER = 30;

/**
 * many-users: --many-users users with trained models, Predict for each once
 * (every model loaded once), then Predict at random users; compares that p99
 * with a single warm user's p99 under the same generator and load, and
 * reports the service's RSS.
 */
export async function runManyUsers(ctx: RunContext): Promise<void> {
  const { service, client, db, pid } = requireService(ctx, "many-users");
  const { duration, warmup, connections, streams, manyUsers } = ctx.options;
  const userIds = Array.from({ length: manyUsers }, (_, i) => `load-${ctx.tag}-many-${i}`);
  const prep = ctx.options.manyUsersPrep === "copy" && db.pool !== null ? "copy" : "train";
  const prepStarted = performance.now();
  if (prep === "copy") {
    progress(`many-users: training a template user on ${SAMPLES_PER_USER} samples, cloning its model for ${manyUsers} users`);
    const template = `load-${ctx.tag}-many-template`;
    await ingestForUsers(client, [template], SAMPLES_PER_USER);
    await client.train({ userId: template, modelType: ModelType.ENERGY_PREDICTION });
    await cloneActiveModel(db.pool!, template, userIds);
  } else {
    progress(`many-users: ingesting ${SAMPLES_PER_USER} samples and calling Train for each of ${manyUsers} users`);
    await ingestForUsers(client, userIds, SAMPLES_PER_USER);
    await trainUsers(client, userIds, "many-users");
  }
  const prepareS = (performance.now() - prepStarted) / 1000;
  progress(`many-users: ${manyUsers} users prepared in ${prepareS.toFixed(1)} s (${prep})`);
  const rssBefore = processRssMiB(pid);
  const bodies = userIds.map((u, i) => encodeBody(PredictRequestSchema, predictRequest(u, i), "grpc"));
  const predict = (body: Buffer): LoadRequest => ({ kind: "Predict", path: methodPath("Predict"), body });
  const died = exitSignal(service);
  const load = { port: service.port, protocol: "grpc" as const, connections, streams, signal: died };

  // Reference: one warm user, the same generator and concurrency.
  const single = encodeBody(PredictRequestSchema, predictRequest(ctx.warmUsers[0]!, 0), "grpc");
  let before = await settledPredictionCount(db, true);
  const warm = await measureWindow(pid, db, warmup, () => generateLoad({ ...load, warmupS: warmup, durationS: duration, next: () => predict(single) }));
  let after = await settledPredictionCount(db, true);
  const warmRow = generatorRow("many-users (1 warm user)", `node:http2 generator ${connections} conn × ${streams} streams, gRPC`, warm, ctx.rawCallsPerS, {
    before,
    after,
  });

  // First call for every user: each model is read from the database and deserialised once.
  before = after;
  const coldGuard = guardRss(pid, ctx.options.maxRssMiB);
  let loaded = 0;
  const cold = await measureWindow(pid, db, 0, () =>
    generateLoad({
      ...load,
      warmupS: 0,
      durationS: Math.max(60, manyUsers / 20),
      maxCalls: manyUsers,
      signal: AbortSignal.any([coldGuard.signal, died]),
      next: (n) => {
        loaded = n + 1;
        return predict(bodies[n]!);
      },
    }),
  );
  coldGuard.stop();
  after = await settledPredictionCount(db, true);
  const rssLoaded = processRssMiB(pid);
  const stoppedAt = coldGuard.tripped();
  const coldRow = generatorRow("many-users (first call each)", `node:http2 generator, each user once`, cold, null, { before, after }, [
    `${manyUsers} users prepared in ${prepareS.toFixed(1)} s by ${prep === "copy" ? `training one user on ${SAMPLES_PER_USER} samples and cloning its model row per user in SQL` : `IngestTrainingData (${SAMPLES_PER_USER} samples each, batched) and one Train per user`}`,
    `service RSS before ${rssBefore?.toFixed(1)} MiB → after every model loaded once ${rssLoaded?.toFixed(1)} MiB` +
      (rssBefore !== null && rssLoaded !== null ? ` (${(((rssLoaded - rssBefore) * 1024) / loaded).toFixed(0)} KiB per model)` : ""),
    ...(stoppedAt === null
      ? []
      : [`STOPPED after ${loaded} of ${manyUsers} users: service RSS ${stoppedAt.toFixed(0)} MiB passed --max-rss-mib ${ctx.options.maxRssMiB}`]),
  ]);

  // Random users, every model loaded.
  const random = seededRandom(7);
  before = after;
  const spreadGuard = guardRss(pid, ctx.options.maxRssMiB * 1.25);
  const spread = await measureWindow(pid, db, warmup, () =>
    generateLoad({
      ...load,
      warmupS: warmup,
      durationS: duration,
      signal: AbortSignal.any([spreadGuard.signal, died]),
      next: () => predict(bodies[Math.floor(random() * loaded)]!),
    }),
  );
  spreadGuard.stop();
  after = await settledPredictionCount(db, true);
  const rssEnd = processRssMiB(pid);
  const spreadP99 = percentiles([...spread.result.byKind.values()].flatMap((k) => k.latenciesMs)).p99;
  const spreadRow = generatorRow(
    "many-users (random)",
    `node:http2 generator ${connections} conn × ${streams} streams, gRPC`,
    spread,
    ctx.rawCallsPerS,
    { before, after },
    [
      `p99 at random over ${loaded} users ${spreadP99.toFixed(2)} ms vs one warm user ${warmRow.p99Ms.toFixed(2)} ms: ${(spreadP99 / warmRow.p99Ms).toFixed(2)}×`,
      `service RSS at the end ${rssEnd?.toFixed(1)} MiB` +
        (spreadGuard.tripped() === null ? "" : ` — STOPPED early: RSS passed ${(ctx.options.maxRssMiB * 1.25).toFixed(0)} MiB`),
    ],
  );
  if (!serviceAlive(service)) throw new Error(`many-users: ${serviceExit(service)}`);
  ctx.rows.push(warmRow, coldRow, spreadRow);
  ctx.details["manyUsers"] = {
    users: manyUsers,
    loaded,
    prep,
    prepareS,
    p99RandomMs: spreadP99,
    p99WarmUserMs: warmRow.p99Ms,
    rssMiB: { before: rssBefore, loaded: rssLoaded, end: rssEnd },
  };
}
