import { Code } from "@connectrpc/connect";
import { SchemaValidationError, sql } from "slonik";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { toConnectError } from "../src/server/errors.ts";
import { freshDatabase, type TestDatabase } from "./support/database.ts";

/** createDatabasePool's result parser: sql.type schemas really run, on the embedded database and on PostgreSQL. */
let db: TestDatabase;
beforeAll(async () => {
  db = await freshDatabase({ migrate: false });
});
afterAll(async () => {
  await db?.close();
});

describe("row schemas", () => {
  it("refuse a row that does not match, as an internal error for the caller", async () => {
    const err = await db.pool.one(sql.type(z.object({ x: z.string().uuid() }))`SELECT 1::int AS x`).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SchemaValidationError);
    expect((err as SchemaValidationError).issues[0]?.path).toEqual(["x"]);
    const mapped = toConnectError(err);
    expect(mapped.code).toBe(Code.Internal);
    expect(mapped.rawMessage).toBe("stored data did not match its schema");
  });

  it("give the schema's output, every row of it", async () => {
    const Doubled = z.object({ n: z.number().transform((n) => n * 2) });
    expect(await db.pool.manyFirst(sql.type(Doubled)`SELECT generate_series(1, 3)::int AS n`)).toEqual([2, 4, 6]);
    const err = await db.pool.any(sql.type(Doubled)`SELECT n::int FROM (VALUES (1), (NULL)) AS t(n)`).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SchemaValidationError);
  });

  it("leave untyped queries alone", async () => {
    expect(await db.pool.one(sql.unsafe`SELECT 1::int AS x`)).toEqual({ x: 1 });
  });
});
