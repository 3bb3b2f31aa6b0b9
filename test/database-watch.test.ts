import { describe, expect, it } from "vitest";
import { sql } from "slonik";
import { createDatabasePool } from "../src/db/pool.ts";
import { createHealthService, OVERALL_HEALTH, ServingStatus } from "../src/server/health.ts";
import { LIVENESS, watchDatabase } from "../src/service/database-watch.ts";
import { freshDatabase } from "./support/database.ts";
import { startTcpProxy } from "./support/tcp-proxy.ts";

/** Readiness follows the database with hysteresis; liveness does not. */
const SETTINGS = { intervalMs: 3_600_000, timeoutMs: 50, failAfter: 2, recoverAfter: 2 };
const SERVICE = "ml.v1.MlService";

function setup(ping: () => Promise<unknown>) {
  const health = createHealthService({ initial: { [SERVICE]: ServingStatus.SERVING, [LIVENESS]: ServingStatus.SERVING } });
  const watch = watchDatabase(ping, health, [OVERALL_HEALTH, SERVICE], SETTINGS);
  const status = () => [health.getStatus(OVERALL_HEALTH), health.getStatus(SERVICE), health.getStatus(LIVENESS)];
  return { watch, status };
}
const { SERVING: UP, NOT_SERVING: DOWN } = ServingStatus;

describe("the database watch", () => {
  it("says NOT_SERVING after two failed checks, SERVING after two good ones, and keeps liveness SERVING", async () => {
    let ok = true;
    const { watch, status } = setup(async () => {
      if (!ok) throw new Error("ECONNREFUSED");
    });
    await watch.check();
    ok = false;
    await watch.check();
    expect(status()).toEqual([UP, UP, UP]);
    await watch.check();
    expect(status()).toEqual([DOWN, DOWN, UP]);
    expect(watch.reachable).toBe(false);
    ok = true;
    await watch.check();
    expect(status()).toEqual([DOWN, DOWN, UP]);
    await watch.check();
    expect(status()).toEqual([UP, UP, UP]);
    watch.stop();
  });

  it("counts a check that never answers as failed, once", async () => {
    let calls = 0;
    const { watch, status } = setup(() => {
      calls++;
      return new Promise(() => undefined);
    });
    await Promise.all([watch.check(), watch.check()]);
    expect(calls).toBe(1);
    await watch.check();
    expect(status()).toEqual([DOWN, DOWN, UP]);
    watch.stop();
  });

  it("follows a real database through an outage and back", async () => {
    const db = await freshDatabase({ migrate: false });
    const url = new URL(db.url);
    const proxy = await startTcpProxy({ host: url.hostname, port: Number(url.port) });
    url.host = `127.0.0.1:${proxy.port}`;
    const pool = await createDatabasePool(url.toString(), { maximumPoolSize: 1 });
    const { watch, status } = setup(() => pool.query(sql.unsafe`SELECT 1`));
    await watch.check();
    expect(status()).toEqual([UP, UP, UP]);
    proxy.cut();
    await watch.check();
    await watch.check();
    expect(status()).toEqual([DOWN, DOWN, UP]);
    proxy.restore();
    // The pool reconnects by itself; two good checks bring readiness back.
    for (let i = 0; i < 20 && !watch.reachable; i++) await watch.check();
    expect(status()).toEqual([UP, UP, UP]);
    watch.stop();
    await pool.end();
    await proxy.close();
    await db.close();
  });
});
