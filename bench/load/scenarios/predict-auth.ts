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
import { encodeBody, methodPath, predictRequest } from "../messages.ts";
import { startService } from "../service.ts";
import { describeSample, sampleCalls } from "../verify.ts";

/** Rounds alternate so a noisy neighbour on a 2-core machine hits both sides alike. */
const ROUNDS = ["off", "on", "off", "on"] as const;
const SAMPLE_CALLS = 50;

/**
 * predict-auth: Predict over gRPC with authentication off and on, in
 * alternating rounds, each on a freshly started service (the same database
 * and warm users): off is the service as configured, on adds a JWKS file, and
 * every h2load stream sends a bearer token with the ml.predict scope, so the
 * auth interceptor verifies (or finds in its cache) a real ES256 token per
 * call. Reports each round and the ratio of the mean calls/s (issue 12's
 * target: on ≥ 90% of off). Leaves the service running with auth off.
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
  const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const ratio = mean(callsPerS.on) / mean(callsPerS.off);
  ctx.details[scenario] = { callsPerS, ratio };
  const last = ctx.rows[ctx.rows.length - 1]!;
  ctx.rows[ctx.rows.length - 1] = {
    ...last,
    notes: [
      ...last.notes,
      `auth on / off, mean calls/s over ${ROUNDS.length / 2} rounds each: ${mean(callsPerS.on).toFixed(0)} / ${mean(callsPerS.off).toFixed(0)} = ${(ratio * 100).toFixed(1)}% (target ≥ 90%)`,
    ],
  };
}
