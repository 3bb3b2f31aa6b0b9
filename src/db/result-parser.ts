import { SchemaValidationError, type Interceptor, type QueryResultRow } from "slonik";

/**
 * slonik's result parser interceptor (its recipe for v49, on the Standard
 * Schema interface zod implements): every row of a `sql.type(Schema)` query is
 * validated and replaced by the schema's output; a row that does not match
 * throws SchemaValidationError (which toConnectError maps to Internal). Without
 * it `sql.type` gives types and checks nothing. Synchronous `transformRow`
 * rather than `transformRowAsync`: our schemas have no async refinements, and
 * the async hook queues every row through a per-query PQueue.
 */
export function createResultParserInterceptor(): Interceptor {
  return {
    name: "result-parser",
    transformRow: (context, query, row) => {
      const parser = context.resultParser;
      if (parser === undefined) return row;
      const result = parser["~standard"].validate(row);
      if (result instanceof Promise) throw new TypeError("row schemas must validate synchronously (no async refinements)");
      if (result.issues !== undefined) throw new SchemaValidationError(query, row, result.issues);
      return result.value as QueryResultRow;
    },
  };
}
