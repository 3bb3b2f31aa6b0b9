import { once } from "node:events";
import { createGzip } from "node:zlib";
import { toBinary } from "@bufbuild/protobuf";
import { PredictRequestSchema } from "../../gen/ml/v1/ml_pb.ts";
import { mlClient } from "../load/client.ts";
import { predictRequest } from "../load/messages.ts";
import { processRssMiB } from "../load/proc.ts";
import { isBugCode, codeOf } from "./mix.ts";
import type { FaultOptions } from "./options.ts";
import { h1Head, h1Request, h2Request, type RawOutcome } from "./raw-calls.ts";
import { codeList, count, progress, type FaultRow } from "./report.ts";
import type { FaultRig } from "./rig.ts";

const PATH = "/ml.v1.MlService/Predict";
/** Past this the harness kills the service itself, so one bomb cannot take the shared machine's memory. */
const RSS_KILL_MIB = 4_096;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A gRPC (or gRPC-Web) frame: flag byte, big-endian length as given (which may lie), payload. */
function frame(payload: Buffer, options: { compressed?: boolean; length?: number } = {}): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt8(options.compressed ? 1 : 0, 0);
  head.writeUInt32BE(options.length ?? payload.length, 1);
  return Buffer.concat([head, payload]);
}

/** `mib` MiB of zeros, gzipped (about 1 MiB per GiB). */
async function gzipBomb(mib: number): Promise<Buffer> {
  const gzip = createGzip({ level: 9 });
  const parts: Buffer[] = [];
  gzip.on("data", (b: Buffer) => parts.push(b));
  const zeros = Buffer.alloc(1024 * 1024);
  for (let i = 0; i < mib; i++) if (!gzip.write(zeros)) await once(gzip, "drain");
  gzip.end();
  await once(gzip, "end");
  return Buffer.concat(parts);
}

/** Peak RSS of a process while `run` runs (sampled every 20 ms), killing it past RSS_KILL_MIB. */
async function withRssPeak<T>(pid: number, run: () => Promise<T>): Promise<{ result: T; beforeMiB: number; peakMiB: number; killed: boolean }> {
  const beforeMiB = processRssMiB(pid) ?? 0;
  let peakMiB = beforeMiB;
  let killed = false;
  const timer = setInterval(() => {
    const rss = processRssMiB(pid);
    if (rss === null) return;
    peakMiB = Math.max(peakMiB, rss);
    if (rss > RSS_KILL_MIB && !killed) {
      killed = true;
      process.kill(pid, "SIGKILL");
    }
  }, 20);
  try {
    const result = await run();
    await sleep(200);
    return { result, beforeMiB, peakMiB, killed };
  } finally {
    clearInterval(timer);
  }
}

const answered = (o: RawOutcome) => o.code !== "no answer" && !isBugCode(o.code);

/**
 * Malformed transport input on raw HTTP/2 and HTTP/1.1 sockets: truncated
 * frames, lying length prefixes, an unsupported encoding, a gzip bomb on every
 * path, and bodies that are never finished. Records each answer and the
 * service's RSS (VmRSS) growth.
 */
export async function runMalformed(rig: FaultRig, options: FaultOptions): Promise<FaultRow[]> {
  let service = await rig.ensure();
  const message = Buffer.from(toBinary(PredictRequestSchema, predictRequest("malformed-user", 1)));
  const half = message.subarray(0, Math.floor(message.length / 2));
  // Field 1 (user_id) holding bytes that are not UTF-8, which protobuf's string type refuses.
  const invalidUtf8 = Buffer.from([0x0a, 0x03, 0xff, 0xfe, 0x41]);
  const grpcH2 = { ":path": PATH, "content-type": "application/grpc", te: "trailers" };
  const connectH2 = { ":path": PATH, "content-type": "application/proto", "connect-protocol-version": "1" };
  const webH1 = { "Content-Type": "application/grpc-web+proto", "X-Grpc-Web": "1" };
  const connectH1 = { "Content-Type": "application/proto", "Connect-Protocol-Version": "1" };
  const h1 = (headers: Record<string, string>, body: Buffer) => h1Request(service.port, h1Head(PATH, headers, body.length), [body], { waitMs: 15_000 });
  const h2 = (headers: Record<string, string>, body: Buffer) => h2Request(service.port, headers, [body], { waitMs: 15_000 });

  const cases: [string, () => Promise<RawOutcome>][] = [
    ["gRPC h2: truncated frame (prefix says 100 B, 10 B sent)", () => h2(grpcH2, frame(message.subarray(0, 10), { length: 100 }))],
    ["gRPC h2: length prefix 0xFFFFFFFF, 10 B sent", () => h2(grpcH2, frame(message.subarray(0, 10), { length: 0xffffffff }))],
    ["gRPC h2: half a protobuf message", () => h2(grpcH2, frame(half))],
    ["gRPC h2: 3 bytes (not even a prefix)", () => h2(grpcH2, Buffer.from([0, 0, 0]))],
    ["gRPC-Web h1: truncated frame", () => h1(webH1, frame(message.subarray(0, 10), { length: 100 }))],
    ["gRPC-Web h1: length prefix 0xFFFFFFFF", () => h1(webH1, frame(message.subarray(0, 10), { length: 0xffffffff }))],
    ["gRPC-Web h1: half a protobuf message", () => h1(webH1, frame(half))],
    ["Connect h1: half a protobuf message", () => h1(connectH1, half)],
    ["Connect h2: half a protobuf message", () => h2(connectH2, half)],
    ["gRPC h2: invalid UTF-8 in user_id", () => h2(grpcH2, frame(invalidUtf8))],
    ["gRPC-Web h1: invalid UTF-8 in user_id", () => h1(webH1, frame(invalidUtf8))],
    ["Connect h1: invalid UTF-8 in user_id", () => h1(connectH1, invalidUtf8)],
    ["gRPC h2: grpc-encoding br", () => h2({ ...grpcH2, "grpc-encoding": "br" }, frame(message, { compressed: true }))],
    ["gRPC-Web h1: grpc-encoding br", () => h1({ ...webH1, "Grpc-Encoding": "br" }, frame(message, { compressed: true }))],
    ["Connect h1: content-encoding br", () => h1({ ...connectH1, "Content-Encoding": "br" }, message)],
  ];
  const rows: FaultRow[] = [];
  for (const [name, run] of cases) {
    service = await rig.ensure();
    const outcome = await run();
    rows.push({
      scenario: "malformed input",
      figure: name,
      value: `${outcome.code} (${outcome.ms.toFixed(0)} ms)`,
      target: "an answer, not Internal/Unknown",
      pass: answered(outcome),
    });
  }

  progress(`malformed: building a gzip bomb of ${options.bombMiB} MiB`);
  const bomb = await gzipBomb(options.bombMiB);
  progress(`malformed: bomb is ${(bomb.length / 1024).toFixed(0)} KiB compressed`);
  const bombs: [string, () => Promise<RawOutcome>][] = [
    ["gRPC h2", () => h2Request(service.port, { ...grpcH2, "grpc-encoding": "gzip" }, [frame(bomb, { compressed: true })], { waitMs: 60_000 })],
    [
      "gRPC-Web h1",
      () =>
        h1Request(service.port, h1Head(PATH, { ...webH1, "Grpc-Encoding": "gzip" }, bomb.length + 5), [frame(bomb, { compressed: true })], { waitMs: 60_000 }),
    ],
    ["Connect h1", () => h1Request(service.port, h1Head(PATH, { ...connectH1, "Content-Encoding": "gzip" }, bomb.length), [bomb], { waitMs: 60_000 })],
    ["Connect h2", () => h2Request(service.port, { ...connectH2, "content-encoding": "gzip" }, [bomb], { waitMs: 60_000 })],
  ];
  for (const [path, run] of bombs) {
    // A fresh process per bomb: memory a previous one took is not given back, and would hide the next one's growth.
    await rig.terminate();
    service = await rig.ensure();
    const { result, beforeMiB, peakMiB, killed } = await withRssPeak(service.child.pid!, run);
    const growth = peakMiB - beforeMiB;
    const alive = service.child.exitCode === null && service.child.signalCode === null;
    progress(`malformed: bomb over ${path}: ${result.code} in ${result.ms.toFixed(0)} ms, RSS ${beforeMiB.toFixed(0)} -> peak ${peakMiB.toFixed(0)} MiB`);
    rows.push({
      scenario: `gzip bomb (${options.bombMiB} MiB inflated, ${(bomb.length / 1024).toFixed(0)} KiB sent)`,
      figure: `${path}: code; RSS growth (peak − before)`,
      value: `${result.code} (${(result.ms / 1000).toFixed(1)} s); +${growth.toFixed(0)} MB${killed ? `, killed by the harness past ${RSS_KILL_MIB} MiB` : alive ? "" : ", service exited"}`,
      target: "ResourceExhausted; < 50 MB",
      pass: result.code === "ResourceExhausted" && growth < 50 && alive,
    });
    if (!alive) await rig.kill9();
  }

  for (const line of rig.bugLogs().slice(-8)) progress(`malformed: service log: ${line.slice(0, 400)}`);

  // Half-sent bodies: the request starts and is never finished. Held open for halfOpenSeconds, against a
  // service whose read deadline (REQUEST_READ_TIMEOUT_SECONDS) is a quarter of that: every one must be cut.
  const readTimeoutS = Math.max(1, Math.floor(options.halfOpenSeconds / 4));
  await rig.terminate();
  service = await rig.ensure({ REQUEST_READ_TIMEOUT_SECONDS: String(readTimeoutS) });
  const n = 50;
  const holdMs = options.halfOpenSeconds * 1_000;
  const partial = frame(message.subarray(0, 10), { length: 1_000 });
  const probe = mlClient(service.port);
  const { result, beforeMiB, peakMiB } = await withRssPeak(service.child.pid!, async () => {
    const calls = [
      ...Array.from({ length: n }, () => h2Request(service.port, grpcH2, [partial], { end: false, waitMs: holdMs }).then((o) => ["gRPC h2", o] as const)),
      ...Array.from({ length: n }, () =>
        h1Request(service.port, h1Head(PATH, connectH1, 1_000), [message.subarray(0, 10)], { waitMs: holdMs }).then((o) => ["Connect h1", o] as const),
      ),
    ];
    await sleep(Math.min(1_000, holdMs / 2));
    const probeCode = await probe.predict(predictRequest("malformed-probe", 2), { timeoutMs: 5_000 }).then(() => "OK", codeOf);
    return { outcomes: await Promise.all(calls), probeCode };
  });
  // What the service does at its deadline: RST_STREAM (CANCEL) on HTTP/2, 408 on HTTP/1.1.
  const cut: Record<string, string> = { "gRPC h2": "reset", "Connect h1": "HTTP 408" };
  for (const path of ["gRPC h2", "Connect h1"]) {
    const codes = new Map<string, number>();
    const outcomes = result.outcomes.filter(([p]) => p === path).map(([, o]) => o);
    for (const o of outcomes) count(codes, o.code);
    const slowest = Math.max(...outcomes.map((o) => o.ms));
    rows.push({
      scenario: `half-sent bodies (${n} per path, held ${options.halfOpenSeconds} s, REQUEST_READ_TIMEOUT_SECONDS=${readTimeoutS})`,
      figure: `${path}: outcome; slowest`,
      value: `${codeList(codes)}; ${(slowest / 1000).toFixed(1)} s`,
      target: `all ${cut[path]} within ${readTimeoutS + 3} s`,
      pass: outcomes.every((o) => o.code === cut[path]) && slowest <= (readTimeoutS + 3) * 1000,
    });
  }
  const alive = service.child.exitCode === null && service.child.signalCode === null;
  rows.push({
    scenario: `half-sent bodies (${n} per path, held ${options.halfOpenSeconds} s, REQUEST_READ_TIMEOUT_SECONDS=${readTimeoutS})`,
    figure: "a normal Predict meanwhile; RSS growth",
    value: `${result.probeCode}; +${(peakMiB - beforeMiB).toFixed(0)} MB`,
    target: "OK; service running",
    pass: result.probeCode === "OK" && alive,
  });
  return rows;
}
