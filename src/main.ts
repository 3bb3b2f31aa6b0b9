import { readConfig } from "./config.ts";
import { createJsonLogger } from "./logger.ts";
import { startService } from "./start.ts";

/** Composition root: read config, start, stop cleanly on SIGINT/SIGTERM. */
const log = createJsonLogger();
try {
  const service = await startService(readConfig(), log);
  const shutdown = (signal: string) => {
    log.info("shutting down", { signal });
    service.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error("shutdown failed", { error: String(err) });
        process.exit(1);
      },
    );
  };
  process.once("SIGINT", () => shutdown("SIGINT"));
  process.once("SIGTERM", () => shutdown("SIGTERM"));
} catch (err) {
  log.error("failed to start", { error: err instanceof Error ? err.message : String(err) });
  process.exit(1);
}
