import { lossRows } from "./consistency.ts";
import { firstAfter, pollHealth } from "./health-poll.ts";
import { codesBetween, isBugCode, prepareUsers, startMix } from "./mix.ts";
import type { FaultOptions } from "./options.ts";
import { codeList, progress, type FaultRow } from "./report.ts";
import type { FaultRig } from "./rig.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A database outage under mixed load: the proxy drops every connection and
 * refuses new ones for `outageSeconds`, then lets them through again. Every
 * acknowledged prediction, feedback and sample must be in the database once
 * spilled predictions are replayed; health must say NOT_SERVING within 2 s of
 * the cut and SERVING within 2 s of the recovery, and liveness SERVING throughout.
 */
export async function runOutage(rig: FaultRig, options: FaultOptions, tag: string): Promise<FaultRow[]> {
  const S = `outage ${options.outageSeconds} s, ${options.clients} clients`;
  const service = await rig.ensure();
  const users = await prepareUsers(service.port, `${tag}-outage`, 4);
  const health = pollHealth(service.port, ["", "liveness"]);
  const mix = startMix(service.port, users, { clients: options.clients, tag: `${tag}-outage` });
  await sleep(3_000);
  progress(`outage: cutting the database for ${options.outageSeconds} s`);
  const cutAt = performance.now();
  rig.proxy.cut();
  await sleep(options.outageSeconds * 1_000);
  const restoredAt = performance.now();
  rig.proxy.restore();
  progress("outage: database back");
  for (let waited = 0; waited < 30_000 && firstAfter(health.samples, "", restoredAt, "SERVING") === null; waited += 100) await sleep(100);
  await sleep(3_000);
  await mix.stop();
  await health.stop();
  const { tally } = mix;
  progress(`outage: load stopped; waiting for ${tally.predictionIds.length} acknowledged predictions to be stored`);
  const losses = await lossRows(rig.pool, S, tally, 120_000, "predictions acknowledged / stored after replay");
  const during = codesBetween(tally.events, cutAt, restoredAt + 2_000);
  const all = codesBetween(tally.events, 0, Infinity);
  const bugs = [...all.keys()].filter(isBugCode);
  const notServing = firstAfter(health.samples, "", cutAt, "NOT_SERVING");
  const serving = firstAfter(health.samples, "", restoredAt, "SERVING");
  const livenessBad = health.samples.filter((s) => s.service === "liveness" && s.status !== "SERVING").length;
  const fmt = (s: number | null) => (s === null ? "never" : `${s.toFixed(2)} s`);
  const byRpc = new Map<string, number>();
  for (const e of tally.events)
    if (e.t >= cutAt && e.t < restoredAt && e.code !== "OK") byRpc.set(`${e.rpc} ${e.code}`, (byRpc.get(`${e.rpc} ${e.code}`) ?? 0) + 1);
  progress(`outage: errors during the outage by RPC: ${codeList(byRpc)}`);
  for (const line of rig.bugLogs().slice(0, 5)) progress(`outage: service log: ${line}`);
  return [
    ...losses,
    {
      scenario: S,
      figure: "codes during the outage (+2 s)",
      value: codeList(during),
      target: "no Internal/Unknown",
      pass: ![...during.keys()].some(isBugCode),
    },
    { scenario: S, figure: "codes over the whole run", value: codeList(all), target: "no Internal/Unknown", pass: bugs.length === 0 },
    { scenario: S, figure: "cut to health NOT_SERVING", value: fmt(notServing), target: "≤ 2 s", pass: notServing !== null && notServing <= 2 },
    { scenario: S, figure: "recovery to health SERVING", value: fmt(serving), target: "≤ 2 s", pass: serving !== null && serving <= 2 },
    { scenario: S, figure: "liveness answers other than SERVING", value: String(livenessBad), target: "0", pass: livenessBad === 0 },
  ];
}
