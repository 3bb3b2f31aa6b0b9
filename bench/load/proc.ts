import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

let ticks: number | null = null;

/** Kernel clock ticks per second, the unit of utime/stime in /proc/<pid>/stat. */
function clockTicks(): number {
  if (ticks === null) {
    try {
      ticks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    } catch {
      ticks = 100;
    }
  }
  return ticks;
}

/** CPU seconds (user + system, all threads) a process has used so far; null once it is gone. */
export function processCpuSeconds(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
    // Fields after the command name, which is in parentheses and may contain spaces.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / clockTicks();
  } catch {
    return null;
  }
}

/** Resident memory of a process in MiB (VmRSS); null once it is gone. */
export function processRssMiB(pid: number): number | null {
  try {
    const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "latin1"));
    return match === null ? null : Number(match[1]) / 1024;
  } catch {
    return null;
  }
}

/** A running CPU measurement over a set of processes; stop() gives the CPU seconds they used meanwhile. */
export interface CpuMeter {
  /**
   * CPU seconds used since the start; null when none of the starting processes
   * can be read any more (they all exited). `pidsNow` adds processes that
   * started meanwhile (e.g. new database backends); they count in full.
   */
  stop(pidsNow?: readonly number[]): number | null;
}

/**
 * Measures CPU used by processes from now on. Processes that end meanwhile
 * are lost (their CPU can no longer be read), so the result is a lower bound.
 */
export function startCpuMeter(pids: readonly number[]): CpuMeter {
  const before = new Map<number, number>();
  for (const pid of pids) {
    const cpu = processCpuSeconds(pid);
    if (cpu !== null) before.set(pid, cpu);
  }
  return {
    stop(pidsNow = []) {
      let used = 0;
      let readable = before.size === 0;
      for (const pid of new Set([...before.keys(), ...pidsNow])) {
        const cpu = processCpuSeconds(pid);
        if (cpu === null) continue;
        used += cpu - (before.get(pid) ?? 0);
        readable ||= before.has(pid);
      }
      return readable ? used : null;
    },
  };
}

/**
 * Every PostgreSQL server process on this host (backends of every database,
 * WAL writer, checkpointer, autovacuum...), found by name in /proc: the whole
 * server's CPU, which the per-database backends alone leave out.
 */
export function postgresPids(): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, "latin1").trim() === "postgres") pids.push(Number(entry));
    } catch {
      // Gone meanwhile.
    }
  }
  return pids;
}
