import pg from "pg";
import { z } from "zod";
import type { ModelTypeName } from "../domain.ts";
import { MODEL_TYPES } from "../domain.ts";
import type { Logger } from "../logger.ts";

/** The channel every activation is announced on, from inside the activating transaction (so only committed ones are heard). */
export const ACTIVATION_CHANNEL = "ml_activation";

const Payload = z.object({ user_id: z.string(), model_type: z.enum(MODEL_TYPES), model_id: z.string() });

/** What a replica does with what it hears. */
export interface ActivationListenerDeps {
  /** A version was activated (by any replica): drop what is cached for that user and type. */
  readonly onActivated: (userId: string, modelType: ModelTypeName) => void;
  /** The listening connection was (re)opened: events may have been missed, so drop every cached active version. */
  readonly onReset: () => void;
  readonly log: Logger;
}

/** A running listener. */
export interface ActivationListener {
  /** Resolves once the first LISTEN is in place. */
  readonly ready: Promise<void>;
  close(): Promise<void>;
}

/**
 * Every replica hears every activation at once: PostgreSQL's LISTEN on one
 * dedicated connection (slonik's pool hands connections out per query and
 * has no LISTEN; node-postgres' Client is the driver it runs on). A lost
 * connection is reopened with backoff, and on every (re)open the caches are
 * reset, since notifications sent while it was down are gone. The active
 * version cache's TTL stays as a safety net.
 */
export function listenForActivations(url: string, deps: ActivationListenerDeps): ActivationListener {
  let closed = false;
  let client: pg.Client | null = null;
  let retryMs = 250;
  let markReady: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => (markReady = resolve));

  async function connect(): Promise<void> {
    if (closed) return;
    const c = new pg.Client({ connectionString: url, keepAlive: true });
    c.on("notification", (msg) => {
      // Anyone may NOTIFY this channel: a payload that is not ours must not throw inside pg's socket handler.
      let payload: unknown = null;
      try {
        payload = JSON.parse(msg.payload ?? "null");
      } catch {
        payload = null;
      }
      const parsed = Payload.safeParse(payload);
      if (parsed.success) deps.onActivated(parsed.data.user_id, parsed.data.model_type);
      else deps.log.error("unreadable activation notification", { payload: (msg.payload ?? "").slice(0, 200) });
    });
    c.on("error", () => undefined);
    c.on("end", () => {
      if (client === c) client = null;
      if (!closed) setTimeout(() => void connect(), retryMs).unref();
    });
    try {
      await c.connect();
      await c.query(`LISTEN ${ACTIVATION_CHANNEL}`);
    } catch (err) {
      deps.log.error("listening for activations failed; retrying", { error: err instanceof Error ? err.message : String(err), retryMs });
      retryMs = Math.min(retryMs * 2, 10_000);
      await c.end().catch(() => undefined);
      return;
    }
    if (closed) {
      await c.end();
      return;
    }
    client = c;
    retryMs = 250;
    deps.onReset();
    markReady();
  }
  // A half-open connection never says it ended: a query that fails or hangs ends it, and the end reconnects.
  const ping = setInterval(() => {
    const c = client;
    if (c === null) return;
    const timeout = setTimeout(() => void c.end().catch(() => undefined), 5_000);
    c.query("SELECT 1").then(
      () => clearTimeout(timeout),
      () => {
        clearTimeout(timeout);
        void c.end().catch(() => undefined);
      },
    );
  }, 30_000);
  ping.unref();
  void connect();
  return {
    ready,
    async close() {
      closed = true;
      clearInterval(ping);
      await client?.end().catch(() => undefined);
    },
  };
}
