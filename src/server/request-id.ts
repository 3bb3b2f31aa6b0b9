import { randomUUID } from "node:crypto";
import { ConnectError, createContextKey, type Interceptor } from "@connectrpc/connect";

/** The header a caller may set to name its call, and in which the service answers the id it used. */
export const REQUEST_ID_HEADER = "x-request-id";

/** The current call's request id, for handlers and later interceptors ("" outside the chain). */
export const requestIdKey = createContextKey<string>("", { description: "request id" });

// A caller's id is taken only when it cannot break a log line or a header.
const ACCEPTABLE_ID = /^[\w.:@/+=-]{1,128}$/;

/**
 * First on the chain: every call gets an id, the caller's `x-request-id` when
 * it is acceptable or a fresh UUID, stored under requestIdKey and returned in
 * the `x-request-id` response header (in error metadata when the call fails,
 * which gRPC sends as a trailer and Connect as a header).
 */
export function createRequestIdInterceptor(newId: () => string = randomUUID): Interceptor {
  // then() rather than async/await: on the hot unary path every await in the chain shows.
  return (next) => (req) => {
    const given = req.header.get(REQUEST_ID_HEADER);
    const id = given !== null && ACCEPTABLE_ID.test(given) ? given : newId();
    req.contextValues.set(requestIdKey, id);
    return next(req).then(
      (res) => {
        res.header.set(REQUEST_ID_HEADER, id);
        return res;
      },
      (err: unknown) => {
        if (err instanceof ConnectError) err.metadata.set(REQUEST_ID_HEADER, id);
        throw err;
      },
    );
  };
}
