import { spawn } from "node:child_process";
import { accessSync, constants, readFileSync, rmSync } from "node:fs";
import { delimiter, join } from "node:path";

/** One h2load process: where, what body, how many connections and streams, for how long. */
export interface H2loadSpec {
  readonly url: string;
  readonly bodyFile: string;
  readonly headers: readonly string[];
  readonly clients: number;
  readonly streams: number;
  readonly durationS: number;
  readonly warmupS: number;
  /** Requests per second per client (h2load --rps); unset = as fast as it can. */
  readonly rpsPerClient?: number;
  readonly logFile: string;
  /** Stops h2load early (the server under test exited); the run then fails. */
  readonly signal?: AbortSignal;
}

/** What one h2load process reported, with per-request latencies from its log file. */
export interface H2loadResult {
  readonly commandLine: string;
  readonly done: number;
  readonly succeeded: number;
  readonly failed: number;
  readonly errored: number;
  readonly timeout: number;
  readonly status2xx: number;
  /** Responses with a 3xx, 4xx or 5xx status. */
  readonly non2xx: number;
  /** Streams h2load logged with status -1: in flight when the duration ended (h2load does not count them as failed). */
  readonly unfinished: number;
  /** Latencies of 2xx responses in the measured window, in ms. */
  readonly latenciesMs: number[];
  /** When each of those requests started, µs since the epoch (same order as latenciesMs). */
  readonly startsUs: number[];
  readonly durationS: number;
}

/** Headers of a gRPC call, as h2load sends them. */
export const GRPC_HEADERS = ["content-type: application/grpc", "te: trailers"] as const;
/** Headers of a Connect unary call with a binary protobuf body, as h2load sends them. */
export const CONNECT_HEADERS = ["content-type: application/proto", "connect-protocol-version: 1"] as const;

/** Every h2load command line this run used, printed in the report. */
export const h2loadCommands: string[] = [];

/** The h2load executable on PATH, or null when it is not installed. */
export function findH2load(): string | null {
  for (const dir of (process.env["PATH"] ?? "").split(delimiter)) {
    if (dir === "") continue;
    const candidate = join(dir, "h2load");
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not in this directory.
    }
  }
  return null;
}

function argsFor(spec: H2loadSpec): string[] {
  const args = ["-c", String(spec.clients), "-m", String(spec.streams), "-D", String(spec.durationS)];
  if (spec.warmupS > 0) args.push("--warm-up-time", String(spec.warmupS));
  if (spec.rpsPerClient !== undefined) args.push("--rps", String(spec.rpsPerClient));
  for (const h of spec.headers) args.push("-H", h);
  args.push("-d", spec.bodyFile, "--log-file", spec.logFile, spec.url);
  return args;
}

function shellQuote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", "'\\''")}'`;
}

function count(text: string, pattern: RegExp): number {
  const match = pattern.exec(text);
  return match === null ? 0 : Number(match[1]);
}

/** Reads h2load's per-request log (start µs, status, µs to end of response). */
function readLog(path: string): { latenciesMs: number[]; startsUs: number[]; unfinished: number } {
  const latenciesMs: number[] = [];
  const startsUs: number[] = [];
  let unfinished = 0;
  let text = "";
  try {
    text = readFileSync(path, "latin1");
  } catch {
    return { latenciesMs, startsUs, unfinished };
  }
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const [start, status, micros] = line.split("\t");
    if (status?.startsWith("2")) {
      latenciesMs.push(Number(micros) / 1000);
      startsUs.push(Number(start));
    } else if (status === "-1") unfinished++;
  }
  return { latenciesMs, startsUs, unfinished };
}

/** Runs one h2load process to its end (killed if it overruns by 30 s) and parses its summary and log. */
export async function runH2load(spec: H2loadSpec): Promise<H2loadResult> {
  const args = argsFor(spec);
  // Bearer tokens are credentials: the report shows that one was sent, not what it was.
  const commandLine = ["h2load", ...args]
    .map((a) => a.replace(/^(authorization: Bearer ).+$/i, "$1<token>"))
    .map(shellQuote)
    .join(" ");
  h2loadCommands.push(commandLine);
  rmSync(spec.logFile, { force: true }); // h2load appends to an existing log.
  const child = spawn("h2load", args, { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (out += chunk.toString()));
  const limitMs = (spec.durationS + spec.warmupS + 30) * 1000;
  const killer = setTimeout(() => child.kill("SIGKILL"), limitMs);
  const stop = () => child.kill("SIGKILL");
  spec.signal?.addEventListener("abort", stop, { once: true });
  const code = await new Promise<number | null>((resolve) => child.once("close", resolve));
  clearTimeout(killer);
  spec.signal?.removeEventListener("abort", stop);
  if (spec.signal?.aborted) throw new Error(`h2load stopped: the server under test exited (${commandLine})`);
  if (code !== 0) throw new Error(`h2load exited with ${code}: ${commandLine}\n${out}`);
  const log = readLog(spec.logFile);
  rmSync(spec.logFile, { force: true });
  return {
    commandLine,
    done: count(out, /(\d+) done/),
    succeeded: count(out, /(\d+) succeeded/),
    failed: count(out, /(\d+) failed/),
    errored: count(out, /(\d+) errored/),
    timeout: count(out, /(\d+) timeout/),
    status2xx: count(out, /(\d+) 2xx/),
    non2xx: count(out, /(\d+) 3xx/) + count(out, /(\d+) 4xx/) + count(out, /(\d+) 5xx/),
    unfinished: log.unfinished,
    latenciesMs: log.latenciesMs,
    startsUs: log.startsUs,
    durationS: spec.durationS,
  };
}

/** The latencies (ms) of requests that started and ended between two wall-clock times (ms since the epoch). */
export function latenciesBetween(result: H2loadResult, fromMs: number, toMs: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < result.latenciesMs.length; i++) {
    const startMs = result.startsUs[i]! / 1000;
    if (startMs >= fromMs && startMs + result.latenciesMs[i]! <= toMs) out.push(result.latenciesMs[i]!);
  }
  return out;
}

/** Several h2load processes at once (one body each), combined into one result. */
export async function runH2loadParallel(specs: readonly H2loadSpec[]): Promise<H2loadResult> {
  const results = await Promise.all(specs.map(runH2load));
  const sum = (key: "done" | "succeeded" | "failed" | "errored" | "timeout" | "status2xx" | "non2xx" | "unfinished") =>
    results.reduce((total, r) => total + r[key], 0);
  return {
    commandLine: results.map((r) => r.commandLine).join("\n"),
    done: sum("done"),
    succeeded: sum("succeeded"),
    failed: sum("failed"),
    errored: sum("errored"),
    timeout: sum("timeout"),
    status2xx: sum("status2xx"),
    non2xx: sum("non2xx"),
    unfinished: sum("unfinished"),
    latenciesMs: results.flatMap((r) => r.latenciesMs),
    startsUs: results.flatMap((r) => r.startsUs),
    durationS: Math.max(...results.map((r) => r.durationS)),
  };
}
