import { ModelType } from "../../gen/ml/v1/ml_pb.ts";
import { mlClient } from "../load/client.ts";
import { ingestForUsers } from "../load/users.ts";
import { lossRows, modelConsistency, waitForPredictions } from "./consistency.ts";
import { codesBetween, isBugCode, prepareUsers, startMix, type MixKind } from "./mix.ts";
import type { FaultOptions } from "./options.ts";
import { codeList, progress, type FaultRow } from "./report.ts";
import type { FaultRig } from "./rig.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Where a kill -9 lands: a delay after a Train call starts (null: no Train, only load), and how Predict acknowledges. */
interface KillPoint {
  readonly name: string;
  readonly afterTrainMs: number | null;
  /** PREDICTION_ACK: durable answers after the row's commit (the 0-lost target); memory, the default, after the batch is queued. */
  readonly ack: "durable" | "memory";
}

/**
 * kill -9 of the service at a few points (right after a Train call starts,
 * mid-fit, and under Predict load only), each time under Predict load, then a
 * restart on the same database and spill folder: every (user, type) must
 * have exactly one active version and every stored version an activation-log
 * entry. With PREDICTION_ACK=durable every acknowledged prediction must be
 * stored; one more point under load with the default (memory) measures what
 * that mode loses: the rows of the batch window a crash cuts off.
 */
export async function runKill(rig: FaultRig, options: FaultOptions, tag: string): Promise<FaultRow[]> {
  const S = "kill -9";
  let service = await rig.ensure();
  const users = await prepareUsers(service.port, `${tag}-kill`, 3);
  // The user whose Train is interrupted: enough samples that a fit takes a while.
  const trainee = `${tag}-kill-trainee`;
  await ingestForUsers(mlClient(service.port), [trainee], 2_000);
  let started = performance.now();
  await mlClient(service.port).train({ userId: trainee, modelType: ModelType.ENERGY_PREDICTION });
  const trainMs = performance.now() - started;
  progress(`kill: a Train of ${trainee} (2,000 samples) takes ${trainMs.toFixed(0)} ms`);
  const points: KillPoint[] = [
    { name: "right after Train starts (30 ms)", afterTrainMs: 30, ack: "durable" },
    { name: `mid-fit (${Math.round(trainMs / 2)} ms after Train starts)`, afterTrainMs: trainMs / 2, ack: "durable" },
    { name: "under Predict load only", afterTrainMs: null, ack: "durable" },
    { name: "under Predict load only", afterTrainMs: null, ack: "memory" },
  ];
  const rows: FaultRow[] = [];
  for (const point of points) {
    // Each point starts its own process, with the point's acknowledgement mode.
    await rig.terminate();
    service = await rig.ensure({ PREDICTION_ACK: point.ack });
    const mix = startMix(service.port, users, { clients: options.clients, tag: `${tag}-kill`, kind: "predict" });
    await sleep(1_500);
    let trainCode = "not called";
    if (point.afterTrainMs !== null) {
      const call = mlClient(service.port)
        .train({ userId: trainee, modelType: ModelType.ENERGY_PREDICTION })
        .then(
          () => "OK",
          () => "error (killed)",
        );
      await sleep(point.afterTrainMs);
      void call.then((c) => (trainCode = c));
    }
    const killAt = performance.now();
    await rig.kill9();
    await mix.stop();
    progress(`kill (${point.name}): killed; restarting`);
    started = performance.now();
    service = await rig.ensure({ PREDICTION_ACK: point.ack });
    const restartS = (performance.now() - started) / 1000;
    const missing = await waitForPredictions(rig.pool, mix.tally.predictionIds, 20_000);
    const models = await modelConsistency(rig.pool);
    const acked = mix.tally.predictionIds.length;
    // How long before the kill the lost ones were acknowledged: the window the in-memory batch (and its INSERT in flight) covers.
    const lostSet = new Set(missing);
    const lostAges = mix.tally.predictionIds.flatMap((id, i) => (lostSet.has(id) ? [killAt - mix.tally.predictionAckedAt[i]!] : []));
    const lostWindow =
      lostAges.length === 0 ? "" : ` (all acknowledged ${Math.round(Math.min(...lostAges))} to ${Math.round(Math.max(...lostAges))} ms before the kill)`;
    rows.push(
      {
        scenario: `${S} ${point.name}, PREDICTION_ACK=${point.ack}`,
        figure: "predictions acknowledged / stored after restart",
        value: `${acked} / ${acked - missing.length}${lostWindow}`,
        target: point.ack === "durable" ? "0 lost" : "",
        pass: point.ack === "durable" ? missing.length === 0 : null,
      },
      {
        scenario: `${S} ${point.name}, PREDICTION_ACK=${point.ack}`,
        figure: "model versions; (user, type) without exactly one active; versions without activation log",
        value: `${models.versions}; ${models.activeNotOne.length}${models.activeNotOne.length > 0 ? ` (${models.activeNotOne.slice(0, 3).join("; ")})` : ""}; ${models.unlogged.length}`,
        target: "0; 0",
        pass: models.activeNotOne.length === 0 && models.unlogged.length === 0,
      },
      {
        scenario: `${S} ${point.name}, PREDICTION_ACK=${point.ack}`,
        figure: "restart to listening; interrupted Train",
        value: `${restartS.toFixed(1)} s; ${trainCode}`,
        target: "",
        pass: null,
      },
    );
  }
  return rows;
}

/** SIGTERM under mixed load: every call acknowledged before or during the shutdown is stored after a restart. */
export async function runSigterm(rig: FaultRig, options: FaultOptions, tag: string): Promise<FaultRow[]> {
  const S = `SIGTERM under load (${options.clients} clients)`;
  let service = await rig.ensure();
  const users = await prepareUsers(service.port, `${tag}-term`, 3);
  const kind: MixKind = "mixed";
  const mix = startMix(service.port, users, { clients: options.clients, tag: `${tag}-term`, kind });
  await sleep(3_000);
  const termAt = performance.now();
  const { code, seconds } = await rig.terminate();
  await mix.stop();
  progress(`sigterm: exited with ${code} after ${seconds.toFixed(2)} s; restarting to replay anything spilled`);
  service = await rig.ensure();
  const { tally } = mix;
  const losses = await lossRows(rig.pool, S, tally, 60_000);
  const after = new Map<string, number>();
  for (const e of tally.events)
    if (e.t >= termAt) after.set(e.code === "OK" ? "OK" : `${e.rpc} ${e.code}`, (after.get(e.code === "OK" ? "OK" : `${e.rpc} ${e.code}`) ?? 0) + 1);
  const all = codesBetween(tally.events, 0, Infinity);
  for (const m of tally.bugMessages) progress(`sigterm: ${m}`);
  return [
    ...losses,
    { scenario: S, figure: "exit code; shutdown time", value: `${code}; ${seconds.toFixed(2)} s`, target: "exit 0", pass: code === 0 },
    { scenario: S, figure: "codes after SIGTERM", value: codeList(after), target: "no Internal/Unknown", pass: ![...all.keys()].some(isBugCode) },
  ];
}
