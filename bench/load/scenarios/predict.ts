import { PredictRequestSchema } from "../../../gen/ml/v1/ml_pb.ts";
import { mlClient } from "../client.ts";
import { requireService, type RunContext } from "../context.ts";
import { runH2loadParallel } from "../h2load.ts";
import { h2loadLayout } from "../h2load-layout.ts";
import { h2loadRow } from "../h2load-row.ts";
import { measureWindow, settledPredictionCount } from "../measure.ts";
import { encodeBody, methodPath, predictRequest, type Protocol } from "../messages.ts";
import { describeSample, sampleCalls } from "../verify.ts";

const SAMPLE_CALLS = 100;

/**
 * predict-grpc / predict-connect: Predict only, warm users, with h2load at
 * full speed; one h2load process (one connection) per user, then 100 calls
 * with a real client to check the status h2load cannot see.
 */
export async function runPredict(ctx: RunContext, protocol: Protocol): Promise<void> {
  const scenario = `predict-${protocol}`;
  const { service, db, pid } = requireService(ctx, scenario);
  const { duration, warmup, connections, streams } = ctx.options;
  const users = Array.from({ length: connections }, (_, i) => ctx.warmUsers[i % ctx.warmUsers.length]!);
  const bodies = users.map((u, i) => encodeBody(PredictRequestSchema, predictRequest(u, i), protocol));
  const specs = h2loadLayout(ctx, scenario, service.port, methodPath("Predict"), protocol, bodies, { durationS: duration, warmupS: warmup });
  const before = await settledPredictionCount(db, true);
  const logLinesBefore = service.logs.length;
  const run = await measureWindow(pid, db, warmup, () => runH2loadParallel(specs));
  const client = mlClient(service.port, protocol);
  const sample = await sampleCalls(SAMPLE_CALLS, (i) => client.predict(predictRequest(users[i % users.length]!, i)));
  const after = await settledPredictionCount(db, true);
  // The access log is an interceptor on the one chain: with ACCESS_LOG_SAMPLE=1 it writes a line for every call, on either path.
  const accessLines = service.logs.slice(logLinesBefore).filter((l) => l.includes('"message":"call"') && l.includes('MlService/Predict"')).length;
  const callsPerS = run.result.status2xx / run.result.durationS;
  ctx.maxPredictPerS = Math.max(ctx.maxPredictPerS ?? 0, callsPerS);
  ctx.rows.push(
    h2loadRow(
      scenario,
      `h2load ${connections}×(1 conn × ${streams} streams), ${protocol}`,
      run,
      ctx.rawCallsPerS,
      {
        successes: run.result.status2xx + sample.ok,
        exact: false,
        rowsDelta: before === null || after === null ? null : after - before,
      },
      [
        `${connections} h2load processes, each 1 connection × ${streams} streams posting one warm user's Predict (${connections} users)`,
        `status check with a connect-es ${protocol} client after the run: ${describeSample(sample, SAMPLE_CALLS)}`,
        `access-log lines for Predict (ACCESS_LOG_SAMPLE=${process.env["ACCESS_LOG_SAMPLE"] ?? "default"}): ${accessLines}; prediction rows added: ${before === null || after === null ? "n/a" : after - before}`,
      ],
    ),
  );
}
