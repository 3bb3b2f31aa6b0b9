import { mkdtempSync } from "node:fs";
import { join } from "node:path";
import { PredictRequestSchema } from "../../../gen/ml/v1/ml_pb.ts";
import { createTestIssuer } from "../../../test/support/jwks.ts";
import { mlClient } from "../client.ts";
import { progress, requireService, type RunContext } from "../context.ts";
import { runH2loadParallel } from "../h2load.ts";
import { h2loadLayout } from "../h2load-layout.ts";
import { h2loadRow } from "../h2load-row.ts";
import { measureWindow } from "../measure.ts";
import { percentiles } from "../stats.ts";
import { encodeBody, methodPath, predictRequest } from "../messages.ts";
import { startService } from "../service.ts";
import { describeSample, sampleCalls } from "../verify.ts";

/** Rounds alternate (three pairs) so a noisy neighbour on a 2-core machine hits both sides alike. */
const ROUNDS = ["off", "on", "off", "on", "off", "on"] as const;
const SAMPLE_CALLS = 50;

/**
 * predict-auth: Predict over gRPC with authentication off and on, in
 * alternating rounds, each on a freshly started service (the same database
 * and warm users): off is the service as configured, on adds a JWKS file, and
 * every h2load stream sends a bearer token with the ml.predict scope, so the
 * auth interceptor verifies (or finds in its cache) a real ES256 token per
 * call. Reports each round, and per pair of rounds the ratio of calls/s and
 * of service CPU per call, with their medians (issue 12's target: on ≥ 90%
 * of off's calls/s). Leaves the service running with auth off.
 */
export async function runPredictAuth(ctx: RunContext): Promise<void> {
  const scenario = "predict-auth";
  requireService(ctx, scenario);
  const issuer = await createTestIssuer(mkdtempSync(join(ctx.tmp, "auth-")), { issuer: "load-issuer" });
  const token = await issuer.token("ml.predict", { expires: "2h" });
  const { duration, warmup, connections, streams } = ctx.options;
  const users = Array.from({ length: connections }, (_, i) => ctx.warmUsers[i % ctx.warmUsers.length]!);
  const bodies = users.map((u, i) => encodeBody(PredictRequestSchema, predictRequest(u, i), "grpc"));
  const callsPerS: Record<"off" | "on", number[]> = { off: [], on: [] };
  const cpuUsPerCall: Record<"off" | "on", number[]> = { off: [], on: [] };
  try {
    for (const [i, auth] of ROUNDS.entries()) {
      await ctx.service?.stop();
      ctx.service = null;
      await startService(ctx, auth === "on" ? issuer.env : {});
      const { service, pid } = requireService(ctx, scenario);
      progress(`${scenario}: round ${i + 1}/${ROUNDS.length}, auth ${auth}`);
      const specs = h2loadLayout(ctx, `${scenario}-${i}`, service.port, methodPath("Predict"), "grpc", bodies, {
        durationS: duration,
        warmupS: warmup,
        ...(auth === "on" ? { headers: [`authorization: Bearer ${token}`] } : {}),
      });
      const run = await measureWindow(pid, ctx.db, warmup, () => runH2loadParallel(specs));
      const client = mlClient(service.port, "grpc", auth === "on" ? token : undefined);
      const sample = await sampleCalls(SAMPLE_CALLS, (n) => client.predict(predictRequest(users[n % users.length]!, n)));
      // Without a token, the auth round must refuse: proof that the token was what let h2load's calls through.
      const refused =
        auth === "on"
          ? await mlClient(service.port, "grpc")
              .predict(predictRequest(users[0]!, 0))
              .then(
                () => "OK",
                (e: Error) => e.message,
              )
          : null;
      const rate = run.result.status2xx / run.result.durationS;
      callsPerS[auth].push(rate);
      cpuUsPerCall[auth].push(((run.serviceCpuS ?? Number.NaN) * 1e6) / run.result.status2xx);
      ctx.rows.push(
        h2loadRow(scenario, `h2load ${connections}×(1 conn × ${streams} streams), gRPC, auth ${auth} (round ${i + 1})`, run, ctx.rawCallsPerS, null, [
          `status check with a connect-es gRPC client${auth === "on" ? " sending the token" : ""}: ${describeSample(sample, SAMPLE_CALLS)}`,
          ...(refused === null ? [] : [`the same call without a token: ${refused}`]),
        ]),
      );
    }
  } finally {
    // Later scenarios expect the service as configured.
    await ctx.service?.stop();
    ctx.service = null;
    await startService(ctx);
  }
  const pairs = callsPerS.on.map((_, i) => i);
  const callsRatio = middle(pairs.map((i) => callsPerS.on[i]! / callsPerS.off[i]!));
  const cpuRatio = middle(pairs.map((i) => cpuUsPerCall.on[i]! / cpuUsPerCall.off[i]!));
  ctx.details[scenario] = { callsPerS, cpuUsPerCall, callsRatio, cpuRatio };
  const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
  const last = ctx.rows[ctx.rows.length - 1]!;
  ctx.rows[ctx.rows.length - 1] = {
    ...last,
    notes: [
      ...last.notes,
      `auth on / off per pair of rounds, calls/s: ${pairs.map((i) => pct(callsPerS.on[i]! / callsPerS.off[i]!)).join(", ")} (median ${pct(callsRatio)}, target ≥ 90%); ` +
        `service CPU per call: ${pairs.map((i) => pct(cpuUsPerCall.on[i]! / cpuUsPerCall.off[i]!)).join(", ")} (median ${pct(cpuRatio)})`,
    ],
  };
}

/** The middle value (nearest rank), the summary of a few pairs that one noisy round cannot drag. */
function middle(xs: readonly number[]): number {
  return percentiles(xs).p50;
}
