import { Code, ConnectError, type Interceptor, type StreamRequest, type UnaryRequest } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { SchemaValidationError, StatementCancelledError, StatementTimeoutError } from "slonik";
import { isDatabaseUnavailable } from "../db/unavailable.ts";
import { DatabaseUnavailable, InvalidInput, ModelLoadFailed, NotEnoughTrainingData, NotFound, PreconditionFailed, TrainingJobFailed } from "../errors.ts";
import type { Logger } from "../logger.ts";
import { requestIdKey } from "./request-id.ts";

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
  if (err instanceof TrainingJobFailed) return new ConnectError("training failed on every attempt; retry later", Code.Unavailable);
  if (err instanceof StatementTimeoutError) return new ConnectError("the database took too long to answer", Code.DeadlineExceeded);
  if (err instanceof Error && err.name === "AbortError") return new ConnectError("the call was cancelled", Code.Canceled);
  if (err instanceof StatementCancelledError) return new ConnectError("the database cancelled the query", Code.Canceled);
  if (isDatabaseUnavailable(err)) return new ConnectError("the database is unavailable; retry later", Code.Unavailable);
  if (err instanceof SchemaValidationError) return new ConnectError("stored data did not match its schema", Code.Internal);
  return new ConnectError("internal error", Code.Internal);
}

/**
 * Interceptor that maps every thrown error with toConnectError and logs what
 * callers do not see (the original error with its cause chain, and the
 * request id), for the codes that mean our fault or the database's.
 */
export function createErrorInterceptor(log: Logger): Interceptor {
  return (next) => (req) => {
    // No await on the way through (it costs the hot path); a synchronous throw is mapped too.
    try {
      return next(req).catch((err: unknown) => {
        throw mapAndLog(log, req, err);
      });
    } catch (err) {
      return Promise.reject(mapAndLog(log, req, err));
    }
  };
}

function mapAndLog(log: Logger, req: UnaryRequest | StreamRequest, err: unknown): ConnectError {
  const mapped = toConnectError(err);
  if (mapped.code === Code.Internal || mapped.code === Code.Unavailable || mapped.code === Code.DataLoss) {
    log.error("call failed", {
      requestId: req.contextValues.get(requestIdKey),
      method: `${req.service.typeName}/${req.method.name}`,
      code: codeToString(mapped.code),
      error: err,
    });
  }
  return mapped;
}
