import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PGlite } from "@electric-sql/pglite";
import { createPool, sql, type DatabasePool } from "slonik";
import { z } from "zod";

/** The database the service runs on during a load run, and how the harness reads it. */
export interface BenchDatabase {
  readonly description: string;
  /** DATABASE_URL or DATA_DIR for the service process. */
  readonly serviceEnv: Record<string, string>;
  /** A pool on the service's database; null for the embedded one (it takes one connection, the service's). */
  readonly pool: DatabasePool | null;
  /** Rows in model_predictions; the embedded database can only be read while the service is stopped. */
  countPredictions(serviceRunning: boolean): Promise<number | null>;
  /** PostgreSQL backend processes serving this database, to measure their CPU; none for embedded. */
  backendPids(): Promise<number[]>;
  close(): Promise<void>;
}

const countQuery = sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM model_predictions`;
const pidsQuery = sql.type(z.object({ pid: z.number() }))`
  SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`;

function serverDatabase(url: string, description: string, pool: DatabasePool, drop: () => Promise<void>): BenchDatabase {
  return {
    description,
    serviceEnv: { DATABASE_URL: url },
    pool,
    async countPredictions() {
      return pool.oneFirst(countQuery);
    },
    async backendPids() {
      return [...(await pool.anyFirst(pidsQuery))];
    },
    async close() {
      await pool.end();
      await drop();
    },
  };
}

/** A new database on a PostgreSQL server (CREATE DATABASE), dropped again by close(). */
export async function freshServerDatabase(serverUrl: string): Promise<BenchDatabase> {
  const name = `ml_load_${randomUUID().replaceAll("-", "").slice(0, 12)}`;
  let admin: DatabasePool;
  try {
    admin = await createPool(serverUrl, { maximumPoolSize: 1, connectionTimeout: 5_000 });
    await admin.query(sql.unsafe`CREATE DATABASE ${sql.identifier([name])}`);
  } catch (err) {
    throw new Error(
      `cannot create a database on ${serverUrl} (${(err as Error).message}); start PostgreSQL, ` +
        `pass --pg-server URL or --database-url URL, or use --embedded`,
      { cause: err },
    );
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  const pool = await createPool(url.toString(), { maximumPoolSize: 2 });
  return serverDatabase(url.toString(), `fresh database ${name} on ${url.host}`, pool, async () => {
    await admin.query(sql.unsafe`DROP DATABASE IF EXISTS ${sql.identifier([name])} WITH (FORCE)`);
    await admin.end();
  });
}

/** A database given by the caller, used as is (counts are differences, nothing is dropped). */
export async function existingDatabase(url: string): Promise<BenchDatabase> {
  const pool = await createPool(url, { maximumPoolSize: 2 });
  return serverDatabase(url, `given database ${new URL(url).host}${new URL(url).pathname}`, pool, async () => {});
}

/** The service's embedded PGlite in a temp folder, read directly once the service has stopped. */
export function embeddedDatabase(): BenchDatabase {
  const dataDir = mkdtempSync(join(tmpdir(), "ml-load-"));
  return {
    description: `embedded PGlite in ${dataDir}`,
    serviceEnv: { DATA_DIR: dataDir, DATABASE_URL: "" },
    pool: null,
    async countPredictions(serviceRunning) {
      if (serviceRunning) return null;
      const db = await PGlite.create(dataDir);
      try {
        const result = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM model_predictions");
        return result.rows[0]!.n;
      } finally {
        await db.close();
      }
    },
    async backendPids() {
      return [];
    },
    async close() {
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
