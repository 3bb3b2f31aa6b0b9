import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import {
  BackendTerminatedError,
  BackendTerminatedUnexpectedlyError,
  ConnectionError,
  SchemaValidationError,
  StatementCancelledError,
  StatementTimeoutError,
} from "slonik";
import { DatabaseUnavailable, InvalidInput, ModelLoadFailed, NotEnoughTrainingData, NotFound, PreconditionFailed } from "../errors.ts";
import type { Logger } from "../logger.ts";

const UNAVAILABLE_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "57P01", "57P03", "08006", "08001"]);

function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

/**
 * The one place domain and database errors become Connect codes. Callers see
 * a message meant for them; SQL, stack traces and causes go only to the log.
 */
export function toConnectError(err: unknown): ConnectError {
  if (err instanceof ConnectError) return err;
  if (err instanceof InvalidInput) return new ConnectError(err.message, Code.InvalidArgument);
  if (err instanceof NotFound) return new ConnectError(err.message, Code.NotFound);
  if (err instanceof NotEnoughTrainingData || err instanceof PreconditionFailed) {
    return new ConnectError(err.message, Code.FailedPrecondition);
  }
  if (err instanceof DatabaseUnavailable) return new ConnectError("the database is unavailable; retry later", Code.Unavailable);
  if (err instanceof ModelLoadFailed) return new ConnectError(err.message, Code.DataLoss);
  if (err instanceof StatementTimeoutError) return new ConnectError("the database took too long to answer", Code.DeadlineExceeded);
  if (err instanceof Error && err.name === "AbortError") return new ConnectError("the call was cancelled", Code.Canceled);
  if (err instanceof StatementCancelledError) return new ConnectError("the database cancelled the query", Code.Canceled);
  if (
    err instanceof ConnectionError ||
    err instanceof BackendTerminatedError ||
    // A connection cut mid-query (network, proxy, server crash), not a backend killed by an admin: still the database being away.
    err instanceof BackendTerminatedUnexpectedlyError ||
    UNAVAILABLE_CODES.has(errorCode(err) ?? "") ||
    UNAVAILABLE_CODES.has(errorCode((err as { cause?: unknown } | null)?.cause) ?? "")
  ) {
    return new ConnectError("the database is unavailable; retry later", Code.Unavailable);
  }
  if (err instanceof SchemaValidationError) return new ConnectError("stored data did not match its schema", Code.Internal);
  return new ConnectError("internal error", Code.Internal);
}

/** Interceptor that maps every thrown error with toConnectError and logs what callers do not see. */
export function createErrorInterceptor(log: Logger): Interceptor {
  return (next) => async (req) => {
    try {
      return await next(req);
    } catch (err) {
      const mapped = toConnectError(err);
      if (mapped.code === Code.Internal || mapped.code === Code.Unavailable || mapped.code === Code.DataLoss) {
        log.error("call failed", { procedure: req.method.name, code: Code[mapped.code], error: describe(err) });
      }
      throw mapped;
    }
  };
}

function describe(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}${err.cause === undefined ? "" : ` (cause: ${describe(err.cause)})`}`;
  return String(err);
}
