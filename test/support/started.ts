import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readConfig } from "../../src/config.ts";
import { silentLogger } from "../../src/logger.ts";
import { startService, type Service } from "../../src/start.ts";
import { freshDatabase, testServerUrl, type TestDatabase } from "./database.ts";

/** The whole service started as `npm start` starts it, on its own database and folders, and how to get rid of all of it. */
export interface StartedService {
  readonly service: Service;
  /** A temp folder of its own (spill files live in it; tests may put keys or certificates there too). */
  readonly dir: string;
  close(): Promise<void>;
}

/**
 * Starts the service on port 0 with `env` on top of the test defaults: a
 * fresh database on TEST_DATABASE_URL's server, or an embedded one; one
 * training thread; a spill folder of its own.
 */
export async function startServiceForTest(env: Record<string, string> = {}, dir = mkdtempSync(join(tmpdir(), "ml-started-"))): Promise<StartedService> {
  const base = { PORT: "0", TRAIN_THREADS: "1", PREDICTION_SPILL_DIR: join(dir, "spill"), ...env };
  let database: TestDatabase | undefined;
  let service: Service;
  if (testServerUrl !== undefined) {
    database = await freshDatabase({ migrate: false });
    service = await startService(readConfig({ ...base, DATABASE_URL: database.url }), silentLogger);
  } else {
    service = await startService(readConfig({ ...base, DATA_DIR: join(dir, "pglite") }), silentLogger);
  }
  return {
    service,
    dir,
    async close() {
      await service.stop();
      await database?.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
