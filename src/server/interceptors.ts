import type { Interceptor } from "@connectrpc/connect";
import type { Logger } from "../logger.ts";
import { createAccessLogInterceptor, type AccessLogSettings } from "./access-log.ts";
import { createErrorInterceptor } from "./errors.ts";
import { createRequestIdInterceptor } from "./request-id.ts";

/** What the chain needs: where lines go and how much of the access log to write. */
export interface InterceptorChainDeps {
  readonly log: Logger;
  readonly accessLog: AccessLogSettings;
  /** Makes request ids when the caller sent none (tests fix it). */
  readonly newRequestId?: () => string;
}

/**
 * The one interceptor chain, outermost first: request id, access log, error
 * mapping. listen() hands it to connect-node and to the lean unary path alike,
 * and tests hand it to the in-memory router transport.
 */
export function createInterceptorChain(deps: InterceptorChainDeps): Interceptor[] {
  return [createRequestIdInterceptor(deps.newRequestId), createAccessLogInterceptor(deps.log, deps.accessLog), createErrorInterceptor(deps.log)];
}
