import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { createPool, sql, type DatabasePool, type Interceptor } from "slonik";
import { startEmbeddedDatabase } from "../../src/db/embedded.ts";
import { migrate } from "../../src/db/migrate.ts";
import { createDatabasePool } from "../../src/db/pool.ts";

/** A database made for one test file, and how to get rid of it. */
export interface TestDatabase {
  readonly url: string;
  readonly pool: DatabasePool;
  readonly embedded: boolean;
  close(): Promise<void>;
}

/** The server tests run against: TEST_DATABASE_URL (a real PostgreSQL), or the embedded default when unset. */
export const testServerUrl: string | undefined = process.env["TEST_DATABASE_URL"] || undefined;

/**
 * A freshly created, migrated database: on the real server a new database per
 * call (dropped on close), otherwise a new embedded PGlite in a temp folder.
 */
export async function freshDatabase(options: { migrate?: boolean; interceptors?: readonly Interceptor[] } = {}): Promise<TestDatabase> {
  let url: string;
  let cleanup: () => Promise<void>;
  let embedded = false;
  if (testServerUrl !== undefined) {
    const name = `ml_test_${randomUUID().replaceAll("-", "").slice(0, 16)}`;
    const admin = await createPool(testServerUrl, { maximumPoolSize: 1 });
    await admin.query(sql.unsafe`CREATE DATABASE ${sql.identifier([name])}`);
    const parsed = new URL(testServerUrl);
    parsed.pathname = `/${name}`;
    url = parsed.toString();
    cleanup = async () => {
      await admin.query(sql.unsafe`DROP DATABASE IF EXISTS ${sql.identifier([name])} WITH (FORCE)`);
      await admin.end();
    };
  } else {
    const dir = mkdtempSync(join(tmpdir(), "ml-test-"));
    const db = await startEmbeddedDatabase(dir);
    url = db.url;
    embedded = true;
    cleanup = async () => {
      await db.stop();
      rmSync(dir, { recursive: true, force: true });
    };
  }
  const pool = await createDatabasePool(url, {
    maximumPoolSize: embedded ? 1 : 5,
    ...(options.interceptors === undefined ? {} : { interceptors: options.interceptors }),
  });
  if (options.migrate ?? true) await migrate(pool);
  return {
    url,
    pool,
    embedded,
    async close() {
      await pool.end();
      await cleanup();
    },
  };
}
