import { sql, type DatabasePool } from "slonik";
import { z } from "zod";
import { migrations as allMigrations, type Migration } from "./migrations.ts";

const AppliedRow = z.object({ version: z.number().int() });

/** Arbitrary but fixed key so concurrent starts migrate one at a time. */
const MIGRATION_LOCK = 7_130_013;

/** Brings the schema up to date at start; safe to run again and from several processes at once. */
export async function migrate(pool: DatabasePool, migrations: readonly Migration[] = allMigrations): Promise<number[]> {
  return pool.transaction(async (tx) => {
    await tx.query(sql.unsafe`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK})`);
    await tx.query(sql.unsafe`CREATE TABLE IF NOT EXISTS schema_migrations (
      version INT PRIMARY KEY,
      name TEXT NOT NULL,
      applied_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
    )`);
    const applied = new Set((await tx.any(sql.type(AppliedRow)`SELECT version FROM schema_migrations`)).map((r) => r.version));
    const done: number[] = [];
    for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
      if (applied.has(m.version)) continue;
      for (const statement of m.statements) await tx.query(statement);
      await tx.query(sql.unsafe`INSERT INTO schema_migrations (version, name) VALUES (${m.version}, ${m.name})`);
      done.push(m.version);
    }
    return done;
  });
}
