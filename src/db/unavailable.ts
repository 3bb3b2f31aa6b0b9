import { BackendTerminatedError, BackendTerminatedUnexpectedlyError, ConnectionError } from "slonik";

/** Socket and PostgreSQL codes that mean "the database cannot be reached now" (admin shutdown, cannot connect, ...). */
const UNAVAILABLE_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "57P01", "57P03", "08006", "08001"]);

function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

/**
 * What node-postgres itself throws when a connection drops, with no code to
 * tell it by (pg-pool and pg's client; pg-boss runs its queries on its own pg
 * pool, not through slonik, so these reach us unwrapped).
 */
const PG_CONNECTION_LOST = /^Connection terminated( unexpectedly| due to connection timeout)?$/;

/**
 * Whether an error says the database is away (retry later), as opposed to a
 * statement it refused (which retrying does not fix). The error mapping
 * answers UNAVAILABLE for the first; the prediction log spills only the first.
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  return (
    err instanceof ConnectionError ||
    err instanceof BackendTerminatedError ||
    // A connection cut mid-query (network, proxy, server crash), not a backend killed by an admin: still the database being away.
    err instanceof BackendTerminatedUnexpectedlyError ||
    (err instanceof Error && PG_CONNECTION_LOST.test(err.message)) ||
    UNAVAILABLE_CODES.has(errorCode(err) ?? "") ||
    UNAVAILABLE_CODES.has(errorCode((err as { cause?: unknown } | null)?.cause) ?? "")
  );
}
