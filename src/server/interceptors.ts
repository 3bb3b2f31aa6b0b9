import type { Interceptor } from "@connectrpc/connect";
import type { Tracer } from "@opentelemetry/api";
import type { Logger } from "../logger.ts";
import type { Metrics } from "../metrics.ts";
import { createTracingInterceptor } from "../tracing.ts";
import { createAuthInterceptor, type AuthSettings } from "./auth.ts";
import { createMetricsInterceptor } from "./metrics.ts";
import { createAccessLogInterceptor, type AccessLogSettings } from "./access-log.ts";
import { createErrorInterceptor } from "./errors.ts";
import { createRequestIdInterceptor } from "./request-id.ts";

/** What the chain needs: where lines go and how much of the access log to write. */
export interface InterceptorChainDeps {
  readonly log: Logger;
  readonly accessLog: AccessLogSettings;
  /** Makes request ids when the caller sent none (tests fix it). */
  readonly newRequestId?: () => string;
  /** Times and counts every call (absent: METRICS_PORT unset). */
  readonly metrics?: Metrics;
  /** A span per call (absent: tracing off). */
  readonly tracer?: Tracer;
  /** Who may call what (absent or null: open). */
  readonly auth?: AuthSettings | null;
}

/**
 * The one interceptor chain, outermost first: request id; metrics (they time
 * everything inside and count the code the caller gets); the call's span;
 * the access log; authentication (a refused call is still counted, traced and
 * logged); error mapping. listen() hands it to connect-node and to the lean
 * unary path alike, and tests hand it to the in-memory router transport.
 */
export function createInterceptorChain(deps: InterceptorChainDeps): Interceptor[] {
  return [
    createRequestIdInterceptor(deps.newRequestId),
    ...(deps.metrics === undefined ? [] : [createMetricsInterceptor(deps.metrics)]),
    ...(deps.tracer === undefined ? [] : [createTracingInterceptor(deps.tracer)]),
    createAccessLogInterceptor(deps.log, deps.accessLog),
    ...(deps.auth == null ? [] : [createAuthInterceptor(deps.auth)]),
    createErrorInterceptor(deps.log),
  ];
}
