import { once } from "node:events";
import { join } from "node:path";
import { startServiceProcess, type ServiceProcess } from "../../test/support/process.ts";
import { bugLogLines } from "../faults/rig.ts";
import { mlClient, type MlClient } from "./client.ts";

/** One replica of a fleet: its process while it runs, a client for it, and whether callers may be sent to it. */
interface Replica {
  process: ServiceProcess | null;
  client: MlClient | null;
  /** false from the moment the harness kills or stops it until its restart listens (a balancer's health view). */
  up: boolean;
}

/**
 * Several replicas of the service on one database, each its own process with
 * its own spill folder, and a client-side round-robin balancer over the ones
 * that are up: what a deployment with a load balancer in front looks like,
 * with kill -9, SIGTERM and restarts under the harness's control.
 */
export interface Fleet {
  readonly size: number;
  /** Ports and pids of the replicas now running (null for one that is down). */
  ports(): (number | null)[];
  pids(): number[];
  /** A client for replica `i` (it must be up). */
  client(i: number): MlClient;
  /** Whether replica `i` takes calls. */
  isUp(i: number): boolean;
  /** The next replica that is up, round robin; each caller (lane) keeps its own turn so lanes spread evenly. */
  pick(lane: number): MlClient;
  /** kill -9 replica `i` and wait for its exit. */
  kill9(i: number): Promise<void>;
  /** SIGTERM replica `i`; its exit code and how long the shutdown took. */
  terminate(i: number): Promise<{ code: number | null; seconds: number }>;
  /** Starts replica `i` again on the same database and spill folder; seconds until it listens. */
  restart(i: number): Promise<number>;
  /** Log lines of every process this fleet started that say a call failed as Internal or Unknown. */
  bugLogs(): string[];
  /** SIGTERM to every replica still running (SIGKILL after 10 s). */
  stop(): Promise<void>;
}

/** Starts `size` replicas with `env` (DATABASE_URL included), each spilling into its own folder under `spillRoot`. */
export async function startFleet(size: number, env: Record<string, string>, spillRoot: string): Promise<Fleet> {
  const envFor = (i: number) => ({ ...env, PREDICTION_SPILL_DIR: join(spillRoot, `replica-${i}`) });
  const replicas: Replica[] = [];
  const started: ServiceProcess[] = [];
  const launch = async (i: number) => {
    const service = await startServiceProcess(envFor(i));
    started.push(service);
    replicas[i] = { process: service, client: mlClient(service.port), up: true };
  };
  // One after the other: every replica migrates the database at start, and they take turns on its lock anyway.
  for (let i = 0; i < size; i++) await launch(i);
  const turns = new Map<number, number>();
  const replica = (i: number) => {
    const r = replicas[i];
    if (r === undefined) throw new RangeError(`replica ${i}: the fleet has ${size}`);
    return r;
  };
  return {
    size,
    ports: () => replicas.map((r) => (r.up ? (r.process?.port ?? null) : null)),
    pids: () => replicas.flatMap((r) => (r.process === null || r.process.child.exitCode !== null ? [] : [r.process.child.pid!])),
    client(i) {
      const r = replica(i);
      if (!r.up || r.client === null) throw new Error(`replica ${i} is down`);
      return r.client;
    },
    isUp: (i) => replica(i).up,
    pick(lane) {
      for (let step = 0; step < size; step++) {
        const i = ((turns.get(lane) ?? lane) + 1) % size;
        turns.set(lane, i);
        if (replicas[i]!.up) return replicas[i]!.client!;
      }
      throw new Error("no replica is up");
    },
    async kill9(i) {
      const r = replica(i);
      r.up = false;
      if (r.process === null || r.process.child.exitCode !== null || r.process.child.signalCode !== null) return;
      const exited = once(r.process.child, "exit");
      r.process.child.kill("SIGKILL");
      await exited;
      r.process = null;
    },
    async terminate(i) {
      const r = replica(i);
      r.up = false;
      if (r.process === null) return { code: null, seconds: 0 };
      const t0 = performance.now();
      const code = await r.process.stop();
      r.process = null;
      return { code, seconds: (performance.now() - t0) / 1000 };
    },
    async restart(i) {
      const t0 = performance.now();
      await launch(i);
      return (performance.now() - t0) / 1000;
    },
    bugLogs: () => bugLogLines(started),
    async stop() {
      await Promise.all(
        replicas.map(async (r) => {
          r.up = false;
          const child = r.process?.child;
          if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
          const exited = once(child, "exit");
          child.kill("SIGTERM");
          const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
          await exited;
          clearTimeout(timer);
        }),
      );
    },
  };
}
