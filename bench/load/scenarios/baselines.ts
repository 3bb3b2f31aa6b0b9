import { PredictRequestSchema } from "../../../gen/ml/v1/ml_pb.ts";
import { startBaseline } from "../child.ts";
import { progress, type RunContext } from "../context.ts";
import { runH2loadParallel } from "../h2load.ts";
import { h2loadLayout } from "../h2load-layout.ts";
import { h2loadRow } from "../h2load-row.ts";
import { measureWindow } from "../measure.ts";
import { encodeBody, methodPath, predictRequest, type Protocol } from "../messages.ts";

const CASES: readonly { mode: "raw" | "connect"; protocol: Protocol; tool: string }[] = [
  { mode: "raw", protocol: "grpc", tool: "raw node:http2, gRPC-shaped" },
  { mode: "connect", protocol: "grpc", tool: "trivial connect-node, gRPC" },
  { mode: "connect", protocol: "connect", tool: "trivial connect-node, Connect" },
];

/**
 * The ceilings on this machine with the same h2load layout: raw node:http2
 * answering a canned gRPC Predict reply, and a trivial connect-node Predict
 * handler over gRPC and over Connect, each server in its own process.
 */
export async function runBaselines(ctx: RunContext): Promise<void> {
  const { duration, warmup } = ctx.options;
  for (const c of CASES) {
    progress(`baseline: ${c.tool}`);
    const server = await startBaseline(c.mode);
    try {
      const bodies = [encodeBody(PredictRequestSchema, predictRequest("baseline-user"), c.protocol)];
      const specs = h2loadLayout(ctx, `baseline-${c.mode}-${c.protocol}`, server.port, methodPath("Predict"), c.protocol, bodies, {
        durationS: duration,
        warmupS: warmup,
      });
      const run = await measureWindow(server.pid, null, warmup, () => runH2loadParallel(specs));
      if (c.mode === "raw") ctx.rawCallsPerS = run.result.status2xx / run.result.durationS;
      ctx.rows.push(h2loadRow(`baseline-${c.mode}-${c.protocol}`, c.tool, run, ctx.rawCallsPerS, null));
    } finally {
      await server.stop();
    }
  }
}
