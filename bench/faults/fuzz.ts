import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { toJson } from "@bufbuild/protobuf";
import fc from "fast-check";
import { MlService } from "../../gen/ml/v1/ml_pb.ts";
import { arbitraryMessage } from "../../test/support/fuzz.ts";
import { forEachLimited } from "../load/pool.ts";
import { isBugCode } from "./mix.ts";
import type { FaultOptions } from "./options.ts";
import { codeList, count, progress, type FaultRow } from "./report.ts";
import type { FaultRig } from "./rig.ts";

/** A call with no answer after this long is a hang. */
const HANG_MS = 300_000;
/** An answer after this long is reported as slow (not a failure). */
const SLOW_MS = 30_000;
const CONCURRENCY = 8;

/**
 * The descriptor-driven fuzz of test/fuzz.test.ts at volume: `fuzzRuns`
 * seeded requests per unary RPC over gRPC, gRPC-Web and Connect. Internal,
 * Unknown, a hang or the service exiting is a failure, printed with its request.
 */
export async function runFuzz(rig: FaultRig, options: FaultOptions): Promise<FaultRow[]> {
  const service = await rig.ensure();
  const baseUrl = `http://127.0.0.1:${service.port}`;
  const protocols: [string, Transport][] = [
    ["gRPC", createGrpcTransport({ baseUrl })],
    ["gRPC-Web", createGrpcWebTransport({ baseUrl, httpVersion: "1.1" })],
    ["Connect", createConnectTransport({ baseUrl, httpVersion: "2" })],
  ];
  const rows: FaultRow[] = [];
  const failures: string[] = [];
  const slow: string[] = [];
  for (const [protocol, transport] of protocols) {
    const client = createClient(MlService, transport) as unknown as Record<string, (req: unknown, options?: unknown) => Promise<unknown>>;
    const codes = new Map<string, number>();
    const started = performance.now();
    let sent = 0;
    for (const method of MlService.methods) {
      if (method.methodKind !== "unary") continue;
      const requests = fc.sample(arbitraryMessage(method.input), { seed: options.seed, numRuns: options.fuzzRuns });
      await forEachLimited(requests.length, CONCURRENCY, async (i) => {
        const req = requests[i]!;
        let timer: NodeJS.Timeout | undefined;
        const hang = new Promise<string>((resolve) => (timer = setTimeout(() => resolve("HANG"), HANG_MS)));
        const callStarted = performance.now();
        const answer = await Promise.race([
          client[method.localName]!(req).then(
            () => "OK",
            (e: unknown) => Code[ConnectError.from(e).code] ?? "?",
          ),
          hang,
        ]);
        clearTimeout(timer);
        const ms = performance.now() - callStarted;
        // An answer that came, but late (a queue of fits on a busy machine), is counted apart from a hang.
        const code = answer !== "HANG" && ms > SLOW_MS ? `${answer} after >${SLOW_MS / 1000} s` : answer;
        if (ms > SLOW_MS) slow.push(`${protocol} ${method.name} ${answer} after ${(ms / 1000).toFixed(0)} s`);
        sent++;
        count(codes, code);
        if (isBugCode(answer) || answer === "HANG") {
          let body: string;
          try {
            body = JSON.stringify(toJson(method.input, req as never));
          } catch {
            body = String(req);
          }
          failures.push(`${protocol} ${method.name} answered ${code} to ${body.slice(0, 400)}`);
        }
      });
    }
    const seconds = (performance.now() - started) / 1000;
    progress(`fuzz ${protocol}: ${sent} requests in ${seconds.toFixed(0)} s: ${codeList(codes)}`);
    const bad = [...codes.keys()].filter((c) => isBugCode(c.split(" ")[0]!) || c === "HANG");
    rows.push({
      scenario: `fuzz ${options.fuzzRuns}/RPC over ${protocol}`,
      figure: `codes of ${sent} requests (${(sent / seconds).toFixed(0)}/s)`,
      value: codeList(codes),
      target: "no Internal/Unknown/hang",
      pass: bad.length === 0,
    });
  }
  const alive = rig.service !== null && rig.service.child.exitCode === null && rig.service.child.signalCode === null;
  for (const f of failures.slice(0, 20)) progress(`fuzz failure: ${f}`);
  for (const f of slow.slice(0, 20)) progress(`fuzz slow answer: ${f}`);
  for (const line of rig.bugLogs().slice(0, 5)) progress(`fuzz: service log: ${line}`);
  rows.push({
    scenario: "fuzz",
    figure: `answers slower than ${SLOW_MS / 1000} s (not hangs: they came)`,
    value:
      slow.length === 0
        ? "none"
        : `${slow.length}: ${[...new Set(slow.map((x) => x.split(" after ")[0]))].join(", ")}; slowest ${Math.max(...slow.map((x) => Number(/after (\d+) s/.exec(x)?.[1] ?? 0)))} s`,
    target: "",
    pass: null,
  });
  rows.push({
    scenario: "fuzz",
    figure: "service still running; first failure",
    value: `${alive ? "yes" : "NO (crashed)"}; ${failures[0] ?? "none"}`.slice(0, 500),
    target: "running, no failure",
    pass: alive && failures.length === 0,
  });
  return rows;
}
