import { readConfig } from "./config.ts";
import { createJsonLogger } from "./logger.ts";
import { startService } from "./start.ts";

/** Composition root: read config, start, stop cleanly on SIGINT/SIGTERM. */
let log = createJsonLogger();
try {
  const config = readConfig();
  log = createJsonLogger({ level: config.logLevel });
  const service = await startService(config, log);
  const shutdown = (signal: string) => {
    log.info("shutting down", { signal });
    service.stop().then(
      () => log.flush().finally(() => process.exit(0)),
      (err: unknown) => {
        log.error("shutdown failed", { error: err });
        void log.flush().finally(() => process.exit(1));
      },
    );
  };
  process.once("SIGINT", () => shutdown("SIGINT"));
  process.once("SIGTERM", () => shutdown("SIGTERM"));
} catch (err) {
  log.error("failed to start", { error: err });
  await log.flush();
  process.exit(1);
}
