import { createPool, type DatabasePool, type Interceptor } from "slonik";
import { createResultParserInterceptor } from "./result-parser.ts";

/** Settings for the one pool the service uses. */
export interface PoolOptions {
  /** Pool size; 1 for the embedded database, which runs one query at a time anyway. */
  readonly maximumPoolSize?: number;
  /** Milliseconds before PostgreSQL cancels a statement. */
  readonly statementTimeoutMs?: number;
  /** slonik interceptors, e.g. a span per query when tracing is on. */
  readonly interceptors?: readonly Interceptor[];
}

/** Opens the slonik pool every repository shares, with rows parsed by their schemas; the caller ends it on shutdown. */
export async function createDatabasePool(url: string, options: PoolOptions = {}): Promise<DatabasePool> {
  return createPool(url, {
    maximumPoolSize: options.maximumPoolSize ?? 10,
    statementTimeout: options.statementTimeoutMs ?? 30_000,
    connectionTimeout: 10_000,
    idleTimeout: 30_000,
    // Rows are parsed by their schema first; then any interceptors the caller adds (a span per query when tracing).
    interceptors: [createResultParserInterceptor(), ...(options.interceptors ?? [])],
  });
}
