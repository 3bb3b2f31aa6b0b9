import { Code, ConnectError } from "@connectrpc/connect";
import { mlClient, type MlClient } from "../load/client.ts";
import { feedbackRequest, ingestRequest, predictRequest, suggestRequest, upsertTasksRequest } from "../load/messages.ts";
import { ingestForUsers, trainUsers } from "../load/users.ts";
import { forEachLimited } from "../load/pool.ts";

/** One answered call: when (performance.now()), which RPC, which code ("OK" or a Code name), how long it took. */
export interface CallEvent {
  readonly t: number;
  readonly rpc: string;
  readonly code: string;
  readonly ms: number;
}

/** What a load acknowledged: every one of these must be in the database afterwards. */
export interface MixTally {
  readonly predictionIds: string[];
  /** When each of predictionIds was acknowledged (performance.now()), in the same order. */
  readonly predictionAckedAt: number[];
  /** Predictions whose Feedback was acknowledged. */
  readonly feedbackIds: string[];
  /** Users created by one acknowledged IngestTrainingData of SAMPLES_PER_INGEST samples each. */
  readonly ingestUsers: string[];
  readonly events: CallEvent[];
  /** "RPC: message" of the first Internal/Unknown answers, for the report. */
  readonly bugMessages: string[];
}

/** Samples per IngestTrainingData of the load, each call for a user of its own (so stored rows count per call). */
export const SAMPLES_PER_INGEST = 5;

/** Which RPCs a load mixes. */
export type MixKind = "mixed" | "predict";

/** Where a lane sends its next call: one port (a connection per lane), or a chooser over several replicas. */
export type MixTarget = number | ((lane: number) => MlClient);

/** A running load. */
export interface Mix {
  readonly tally: MixTally;
  /** Stops issuing calls and waits for the ones in flight. */
  stop(): Promise<void>;
}

/**
 * The code of a failed call. One exception: an HTTP/2 stream the server
 * refused (REFUSED_STREAM, after its GOAWAY on shutdown) reaches connect-node's
 * client as a Node stream error, which it reports as INTERNAL; the gRPC spec
 * maps REFUSED_STREAM to UNAVAILABLE (never processed, safe to retry), and the
 * service answered no INTERNAL, so it is counted apart as "RefusedStream".
 */
export function codeOf(err: unknown): string {
  const error = ConnectError.from(err);
  if (error.code === Code.Internal && /NGHTTP2_REFUSED_STREAM/.test(error.message)) return "RefusedStream";
  return Code[error.code] ?? "?";
}

/**
 * `clients` concurrent callers, each on its own HTTP/2 connection, each
 * calling in turn Predict, Feedback (on an acknowledged prediction),
 * IngestTrainingData (5 samples of a new user) and SuggestTasks, or only
 * Predict. Every call has a 5 s deadline, so a hung call counts as
 * DEADLINE_EXCEEDED instead of stopping the client.
 */
export function startMix(target: MixTarget, users: readonly string[], options: { clients: number; tag: string; kind?: MixKind }): Mix {
  const tally: MixTally = { predictionIds: [], predictionAckedAt: [], feedbackIds: [], ingestUsers: [], events: [], bugMessages: [] };
  const unanswered: string[] = [];
  let stopped = false;
  const call = async <T>(rpc: string, run: () => Promise<T>): Promise<T | null> => {
    const start = performance.now();
    try {
      const out = await run();
      const t = performance.now();
      tally.events.push({ t, rpc, code: "OK", ms: t - start });
      return out;
    } catch (err) {
      const code = codeOf(err);
      const t = performance.now();
      tally.events.push({ t, rpc, code, ms: t - start });
      if (isBugCode(code) && tally.bugMessages.length < 20) tally.bugMessages.push(`${rpc}: ${ConnectError.from(err).message}`);
      // Not a tight loop of failures while the service is down or gone.
      await new Promise((r) => setTimeout(r, 20));
      return null;
    }
  };
  const lane = async (lane: number) => {
    const own: MlClient | null = typeof target === "number" ? mlClient(target) : null;
    const opts = { timeoutMs: 5_000 };
    for (let i = 0; !stopped; i++) {
      const client = own ?? (target as (lane: number) => MlClient)(lane);
      const user = users[(lane + i) % users.length]!;
      const op = options.kind === "predict" ? 0 : i % 4;
      if (op === 1 && unanswered.length > 0) {
        const id = unanswered.shift()!;
        const ok = await call("Feedback", () => client.feedback(feedbackRequest(id), opts));
        if (ok !== null) tally.feedbackIds.push(id);
      } else if (op === 2) {
        const ingestUser = `${options.tag}-ing-${lane}-${i}`;
        const ok = await call("IngestTrainingData", () => client.ingestTrainingData(ingestRequest(ingestUser, SAMPLES_PER_INGEST, i), opts));
        if (ok !== null) tally.ingestUsers.push(ingestUser);
      } else if (op === 3) {
        await call("SuggestTasks", () => client.suggestTasks(suggestRequest(user, i), opts));
      } else {
        const answer = await call("Predict", () => client.predict(predictRequest(user, i), opts));
        if (answer !== null) {
          tally.predictionIds.push(answer.predictionId);
          tally.predictionAckedAt.push(performance.now());
          if (i % 8 === 0) unanswered.push(answer.predictionId);
        }
      }
    }
  };
  const lanes = Array.from({ length: options.clients }, (_, i) => lane(i));
  return {
    tally,
    async stop() {
      stopped = true;
      await Promise.all(lanes);
    },
  };
}

/** Users with 60 samples, a trained model and 10 open tasks, as the load harness prepares them. */
export async function prepareUsers(port: number, prefix: string, count: number): Promise<string[]> {
  const client = mlClient(port);
  const users = Array.from({ length: count }, (_, i) => `${prefix}-${i}`);
  await ingestForUsers(client, users, 60);
  await trainUsers(client, users, prefix);
  await forEachLimited(users.length, 4, async (i) => {
    await client.upsertTasks(upsertTasksRequest(users[i]!, 10, i));
  });
  return users;
}

/** Counts events by code in a time window [from, to). */
export function codesBetween(events: readonly CallEvent[], from: number, to: number): Map<string, number> {
  const counts = new Map<string, number>();
  for (const e of events) if (e.t >= from && e.t < to) counts.set(e.code, (counts.get(e.code) ?? 0) + 1);
  return counts;
}

/** Whether a code is a bug of ours by the service's own rules. */
export const isBugCode = (code: string): boolean => code === "Internal" || code === "Unknown";
