import { context, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Span, type TextMapGetter, type Tracer } from "@opentelemetry/api";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BatchSpanProcessor, SimpleSpanProcessor, TracerProvider, type SpanExporter } from "@opentelemetry/sdk-trace";
import type { Interceptor as QueryInterceptor } from "slonik";
import type { TrainJobRunner } from "./service/trainer.ts";

/**
 * Traces with OpenTelemetry: a span for each RPC (continuing the caller's
 * W3C `traceparent`), a child for each database query it runs and for each
 * training job it starts. Everything here is built only when tracing is on
 * (OTEL_EXPORTER_OTLP_ENDPOINT set, or a test's exporter): with it off, no
 * interceptor, no context manager and no span exist, so it costs nothing.
 */

/** A tracer and the provider that exports its spans. */
export interface Tracing {
  readonly tracer: Tracer;
  /** Exports what is buffered and stops (on shutdown, after the last call). */
  shutdown(): Promise<void>;
}

/**
 * Builds the tracer. Spans of a call find their parent through the async
 * context, so the AsyncLocalStorage context manager is installed globally
 * (once per process; the tracer itself is not global, so two services in one
 * process keep their own exporters).
 */
export function createTracing(exporter: SpanExporter, options: { batch?: boolean; serviceName?: string } = {}): Tracing {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ "service.name": options.serviceName ?? "ml-energy-service" }),
    spanProcessors: [(options.batch ?? true) ? new BatchSpanProcessor({ exporter }) : new SimpleSpanProcessor({ exporter })],
  });
  return { tracer: provider.getTracer("ml-energy-service"), shutdown: () => provider.shutdown() };
}

const propagator = new W3CTraceContextPropagator();
const headerGetter: TextMapGetter<Headers> = {
  keys: (carrier) => [...carrier.keys()],
  get: (carrier, key) => carrier.get(key) ?? undefined,
};

/** Ends a span with the error's Connect code (a domain error not yet mapped counts as its own message). */
function endWithError(span: Span, err: unknown): void {
  const code = err instanceof ConnectError ? Code[err.code] : "unknown";
  span.setAttribute("rpc.connect_rpc.error_code", code);
  span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
  span.end();
}

/** One server span per call, a child of the caller's `traceparent` when it sent one; the handler runs inside it. */
export function createTracingInterceptor(tracer: Tracer): Interceptor {
  return (next) => async (req) => {
    const parent = propagator.extract(ROOT_CONTEXT, req.header, headerGetter);
    const span = tracer.startSpan(
      `${req.service.typeName}/${req.method.name}`,
      { kind: SpanKind.SERVER, attributes: { "rpc.system": "connect_rpc", "rpc.service": req.service.typeName, "rpc.method": req.method.name } },
      parent,
    );
    try {
      const res = await context.with(trace.setSpan(parent, span), () => next(req));
      span.end();
      return res;
    } catch (err) {
      endWithError(span, err);
      throw err;
    }
  };
}

/** The span of each query lives in slonik's per-query sandbox between its start and its end. */
const SPAN = "otelSpan";

/** A client span per database query, under whatever span is active when the query starts (an RPC's, a job's). */
export function createQueryTracingInterceptor(tracer: Tracer): QueryInterceptor {
  const finish = (sandbox: Record<string, unknown>, err?: Error) => {
    const span = sandbox[SPAN] as Span | undefined;
    if (span === undefined) return null;
    delete sandbox[SPAN];
    if (err !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: err.message });
    span.end();
    return null;
  };
  return {
    name: "otel-query-spans",
    beforeQueryExecution(queryContext, query) {
      queryContext.sandbox[SPAN] = tracer.startSpan(
        "db.query",
        // The statement with its $n placeholders: values (user data) never reach the trace.
        { kind: SpanKind.CLIENT, attributes: { "db.system.name": "postgresql", "db.query.text": query.sql.slice(0, 2_000) } },
        context.active(),
      );
      return null;
    },
    afterQueryExecution: (queryContext) => finish(queryContext.sandbox),
    queryExecutionError: (queryContext, _query, error) => finish(queryContext.sandbox, error),
  };
}

/** Runs each training job inside a span of its own, under the call (or background task) that started it. */
export function traceTrainingJobs(tracer: Tracer, runJob: TrainJobRunner): TrainJobRunner {
  return (job, signal) =>
    tracer.startActiveSpan(`train ${job.kind ?? "forest"}`, { attributes: { "ml.job.kind": job.kind ?? "forest" } }, async (span) => {
      try {
        const result = await runJob(job, signal);
        span.setAttribute("ml.evaluation.accuracy", result.evaluation.accuracy);
        span.end();
        return result;
      } catch (err) {
        endWithError(span, err);
        throw err;
      }
    });
}
