import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const SERVER = fileURLToPath(new URL("./baseline-server.ts", import.meta.url));

/** A baseline server child process and its port. */
export interface BaselineProcess {
  readonly port: number;
  readonly pid: number;
  stop(): Promise<void>;
}

/** Starts bench/load/baseline-server.ts in `mode` and waits (at most 30 s) for the port it prints. */
export async function startBaseline(mode: "raw" | "connect"): Promise<BaselineProcess> {
  const child: ChildProcess = spawn(process.execPath, ["--import", "tsx", SERVER, mode], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "inherit"],
  });
  const port = await new Promise<number>((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`baseline ${mode} did not start`)), 30_000);
    child.stdout!.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      const match = /"port":(\d+)/.exec(out);
      if (match !== null) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`baseline ${mode} exited with ${code}`));
    });
  });
  return {
    port,
    pid: child.pid!,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, "exit");
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
