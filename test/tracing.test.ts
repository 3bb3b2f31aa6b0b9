import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InMemorySpanExporter, type ReadableSpan } from "@opentelemetry/sdk-trace";
import { ModelType } from "../gen/ml/v1/ml_pb.ts";
import { syntheticSamples, syntheticUsers } from "../src/ml/synthetic.ts";
import { createTracing, type Tracing } from "../src/tracing.ts";
import { sampleMessages } from "./support/fixtures.ts";
import { startTestService, type TestService } from "./support/service.ts";

/** A call that carries a W3C traceparent gives one tree: the RPC under the caller's span, its queries and its training job under it. */
let s: TestService;
let tracing: Tracing;
const exporter = new InMemorySpanExporter();
const TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN = "00f067aa0ba902b7";

beforeAll(async () => {
  tracing = createTracing(exporter, { batch: false });
  s = await startTestService({ tracer: tracing.tracer });
});
afterAll(async () => {
  await s?.close();
  await tracing?.shutdown();
});

describe("tracing", () => {
  it("continues the caller's trace: RPC span, its database queries and its training job as children", async () => {
    const user = syntheticUsers(1, 3)[0]!;
    await s.client.ingestTrainingData({ samples: sampleMessages("t-1", syntheticSamples(user, 30, 1)) });
    exporter.reset();
    await s.client.train({ userId: "t-1", modelType: ModelType.ENERGY_PREDICTION }, { headers: { traceparent: `00-${TRACE_ID}-${CALLER_SPAN}-01` } });
    const spans = exporter.getFinishedSpans().filter((x) => x.spanContext().traceId === TRACE_ID);
    const parentOf = (x: ReadableSpan) => x.parentSpanContext?.spanId;
    const rpc = spans.find((x) => x.name === "ml.v1.MlService/Train");
    expect(rpc).toBeDefined();
    expect(parentOf(rpc!)).toBe(CALLER_SPAN);
    expect(rpc!.attributes["rpc.method"]).toBe("Train");
    const children = spans.filter((x) => parentOf(x) === rpc!.spanContext().spanId);
    const job = children.find((x) => x.name === "train energy-user");
    expect(job).toBeDefined();
    expect(job!.attributes["ml.evaluation.accuracy"]).toBeGreaterThan(0);
    const queries = children.filter((x) => x.name === "db.query");
    // Reading the samples, storing the version, activating it: each a query under the call.
    expect(queries.length).toBeGreaterThanOrEqual(3);
    expect(queries.some((q) => /INSERT INTO ml_models/.test(String(q.attributes["db.query.text"])))).toBe(true);
    // Every span of the call is in the caller's trace; nothing outlives the call.
    for (const x of spans) expect(x.ended).toBe(true);
  });

  it("marks a failed call's span with its error, and starts a new trace without a traceparent", async () => {
    exporter.reset();
    await s.client.train({ userId: "nobody", modelType: ModelType.ENERGY_PREDICTION }).catch(() => undefined);
    const rpc = exporter.getFinishedSpans().find((x) => x.name === "ml.v1.MlService/Train")!;
    expect(rpc.status.code).toBe(2);
    expect(rpc.attributes["rpc.connect_rpc.error_code"]).toBe("FailedPrecondition");
    expect(rpc.parentSpanContext).toBeUndefined();
  });
});
