import http2 from "node:http2";
import { setTimeout as sleep } from "node:timers/promises";
import type { Protocol } from "./messages.ts";

/** One call to make: what it is (for per-kind counts), where, and the encoded body. */
export interface LoadRequest {
  readonly kind: string;
  readonly path: string;
  readonly body: Buffer;
}

/** How a generator run is shaped; it always ends by itself (time, count or signal). */
export interface GeneratorOptions {
  readonly port: number;
  readonly protocol: Protocol;
  readonly connections: number;
  /** Concurrent calls per connection (a closed loop: each stream issues its next call when one ends). */
  readonly streams: number;
  readonly warmupS: number;
  /** Measured seconds after the warm-up; also the time limit of count-bounded runs. */
  readonly durationS: number;
  /** Stop issuing after this many calls (count-bounded runs). */
  readonly maxCalls?: number;
  /** Calls per second across all streams; unset = as fast as the service answers. */
  readonly rate?: number;
  /** The request for the n-th call. */
  readonly next: (n: number) => LoadRequest;
  /** Receives the response message (without gRPC framing) of each successful call. */
  readonly onMessage?: (kind: string, message: Buffer) => void;
  /** Stops issuing new calls early (e.g. once the service has exited). */
  readonly signal?: AbortSignal;
  /** Sees every completed call (error null on success), e.g. to split counts around an event. */
  readonly observe?: (kind: string, error: string | null) => void;
}

/** Counts for one kind of call. `ok`/`errors` cover the whole run, `measured*` only the window. */
export interface KindStats {
  ok: number;
  errors: number;
  measuredOk: number;
  measuredErrors: number;
  /** Latencies of successful calls that completed in the measured window, in ms. */
  readonly latenciesMs: number[];
}

/** What a generator run saw. */
export interface GeneratorResult {
  readonly byKind: ReadonlyMap<string, KindStats>;
  /** Error descriptions (grpc-status, HTTP status, stream error code) and how often each occurred. */
  readonly errorKinds: ReadonlyMap<string, number>;
  /** Seconds the measured window lasted: to its end, or to the last answer when stopped early by count or signal. */
  readonly measuredS: number;
  /** CPU seconds the generator itself used (this process). */
  readonly generatorCpuS: number;
}

const DRAIN_MS = 15_000;
const RECONNECT_BACKOFF_MS = 100;

function headersFor(protocol: Protocol, path: string): http2.OutgoingHttpHeaders {
  return protocol === "grpc"
    ? { ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers" }
    : { ":method": "POST", ":path": path, "content-type": "application/proto", "connect-protocol-version": "1" };
}

/**
 * A closed-loop HTTP/2 load generator on node:http2: `connections` sessions
 * with `streams` calls in flight on each, any mix of bodies (which h2load
 * cannot do in one process), and the gRPC status of every answer checked
 * (which h2load does not do). Calls still in flight at the end are awaited
 * (up to 15 s) so every completed response is counted.
 */
export async function generateLoad(options: GeneratorOptions): Promise<GeneratorResult> {
  const { protocol, connections, streams } = options;
  const url = `http://127.0.0.1:${options.port}`;
  const byKind = new Map<string, KindStats>();
  const errorKinds = new Map<string, number>();
  const cpuStart = process.cpuUsage();
  const t0 = performance.now();
  const windowStart = t0 + options.warmupS * 1000;
  const windowEnd = windowStart + options.durationS * 1000;
  let stoppedAt: number | null = null;
  let lastEnd = windowStart;
  let issued = 0;

  const stopping = () => {
    if (stoppedAt !== null) return true;
    const now = performance.now();
    if (now >= windowEnd || options.signal?.aborted || (options.maxCalls !== undefined && issued >= options.maxCalls)) {
      stoppedAt = Math.min(now, windowEnd);
      return true;
    }
    return false;
  };

  const sessions: (http2.ClientHttp2Session | null)[] = Array.from({ length: connections }, () => null);
  const connecting: (Promise<http2.ClientHttp2Session> | null)[] = Array.from({ length: connections }, () => null);
  const everySession = new Set<http2.ClientHttp2Session>();
  const alive = (s: http2.ClientHttp2Session | null): s is http2.ClientHttp2Session => s !== null && !s.closed && !s.destroyed;

  function sessionFor(c: number): Promise<http2.ClientHttp2Session> {
    const current = sessions[c] ?? null;
    if (alive(current)) return Promise.resolve(current);
    if (connecting[c] === null) {
      const attempt: Promise<http2.ClientHttp2Session> = new Promise((resolve, reject) => {
        const session = http2.connect(url);
        everySession.add(session);
        let connected = false;
        session.on("error", (err) => {
          session.destroy();
          if (connected) return;
          // Let the next attempt wait a little, so a refused port does not spin.
          setTimeout(() => {
            if (connecting[c] === attempt) connecting[c] = null;
          }, RECONNECT_BACKOFF_MS);
          reject(err);
        });
        session.once("connect", () => {
          connected = true;
          sessions[c] = session;
          connecting[c] = null;
          resolve(session);
        });
        session.once("goaway", () => session.close());
        session.once("close", () => everySession.delete(session));
      });
      connecting[c] = attempt;
    }
    return connecting[c]!;
  }

  function stats(kind: string): KindStats {
    let s = byKind.get(kind);
    if (s === undefined) {
      s = { ok: 0, errors: 0, measuredOk: 0, measuredErrors: 0, latenciesMs: [] };
      byKind.set(kind, s);
    }
    return s;
  }

  function record(kind: string, start: number, error: string | null): void {
    const end = performance.now();
    const s = stats(kind);
    const measured = end >= windowStart && end <= windowEnd;
    if (measured) lastEnd = end;
    options.observe?.(kind, error);
    if (error === null) {
      s.ok++;
      if (measured) {
        s.measuredOk++;
        s.latenciesMs.push(end - start);
      }
    } else {
      s.errors++;
      if (measured) s.measuredErrors++;
      if (errorKinds.size < 20 || errorKinds.has(error)) errorKinds.set(error, (errorKinds.get(error) ?? 0) + 1);
    }
  }

  function call(session: http2.ClientHttp2Session, req: LoadRequest): Promise<void> {
    const start = performance.now();
    return new Promise((resolve) => {
      let stream: http2.ClientHttp2Stream;
      try {
        stream = session.request(headersFor(protocol, req.path), { endStream: false });
      } catch (err) {
        record(req.kind, start, (err as NodeJS.ErrnoException).code ?? String(err));
        resolve();
        return;
      }
      let status = 0;
      let grpcStatus: string | undefined;
      let grpcMessage: string | undefined;
      let streamError: string | undefined;
      const chunks: Buffer[] = [];
      stream.on("response", (headers) => {
        status = Number(headers[":status"]);
        grpcStatus = headers["grpc-status"] as string | undefined;
        grpcMessage = headers["grpc-message"] as string | undefined;
      });
      stream.on("trailers", (trailers) => {
        grpcStatus = (trailers["grpc-status"] as string | undefined) ?? grpcStatus;
        grpcMessage = (trailers["grpc-message"] as string | undefined) ?? grpcMessage;
      });
      stream.on("data", (chunk: Buffer) => {
        if (options.onMessage !== undefined) chunks.push(chunk);
      });
      stream.on("error", (err: NodeJS.ErrnoException) => (streamError = err.code ?? err.message));
      stream.on("close", () => {
        let error: string | null = null;
        if (streamError !== undefined) error = `stream ${streamError}`;
        else if (status !== 200) error = `HTTP ${status}`;
        else if (protocol === "grpc" && grpcStatus !== "0") {
          error = `grpc-status ${grpcStatus ?? "missing"}${grpcMessage ? ` ${readableMessage(grpcMessage)}` : ""}`;
        }
        if (error === null && options.onMessage !== undefined) {
          const body = Buffer.concat(chunks);
          options.onMessage(req.kind, protocol === "grpc" ? body.subarray(5) : body);
        }
        record(req.kind, start, error);
        resolve();
      });
      stream.end(req.body);
    });
  }

  async function worker(c: number): Promise<void> {
    while (!stopping()) {
      const n = issued++;
      if (options.rate !== undefined) {
        const wait = t0 + (n * 1000) / options.rate - performance.now();
        if (wait > 0) await sleep(wait);
        if (stopping()) return;
      }
      const req = options.next(n);
      let session: http2.ClientHttp2Session;
      try {
        session = await sessionFor(c);
      } catch (err) {
        record(req.kind, performance.now(), `connect ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
        await sleep(RECONNECT_BACKOFF_MS);
        continue;
      }
      await call(session, req);
    }
  }

  const workers: Promise<void>[] = [];
  for (let c = 0; c < connections; c++) for (let s = 0; s < streams; s++) workers.push(worker(c));
  const drained = Promise.all(workers);
  // Calls in flight when issuing stops get DRAIN_MS to finish; then the sessions are torn down.
  const issuingStopped = (async () => {
    while (!stopping()) await sleep(20);
  })();
  await issuingStopped;
  const timer = setTimeout(() => everySession.forEach((s) => s.destroy()), DRAIN_MS);
  await drained;
  clearTimeout(timer);
  for (const s of everySession) s.close();
  const cpu = process.cpuUsage(cpuStart);
  return {
    byKind,
    errorKinds,
    measuredS: Math.max(0, ((stoppedAt !== null && stoppedAt < windowEnd ? lastEnd : windowEnd) - windowStart) / 1000),
    generatorCpuS: (cpu.user + cpu.system) / 1e6,
  };
}

/** A grpc-message (percent-encoded) shortened for the notes; kept raw when it does not decode. */
function readableMessage(encoded: string): string {
  try {
    return decodeURIComponent(encoded).slice(0, 80);
  } catch {
    return encoded.slice(0, 80);
  }
}

/** Sum of one counter over all kinds of a generator result. */
export function total(result: GeneratorResult, key: "ok" | "errors" | "measuredOk" | "measuredErrors", kinds?: readonly string[]): number {
  let sum = 0;
  for (const [kind, s] of result.byKind) if (kinds === undefined || kinds.includes(kind)) sum += s[key];
  return sum;
}
