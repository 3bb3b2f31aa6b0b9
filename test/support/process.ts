import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** A service started as its own process, exactly as `npm start` runs it. */
export interface ServiceProcess {
  readonly port: number;
  readonly child: ChildProcess;
  readonly logs: string[];
  /** Sends SIGTERM and waits for the exit code. */
  stop(): Promise<number | null>;
}

/** Starts `tsx src/main.ts` on a free port and resolves once it logs that it listens. */
export async function startServiceProcess(env: Record<string, string>): Promise<ServiceProcess> {
  // The same flags as `npm start` (package.json): a 32 MB young generation halves the GC work per Predict under load.
  const child = spawn(process.execPath, ["--max-semi-space-size=32", "--import", "tsx", "src/main.ts"], {
    cwd: ROOT,
    env: { ...process.env, PORT: "0", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const logs: string[] = [];
  const port = await new Promise<number>((resolve, reject) => {
    let buffer = "";
    let listening = false;
    const timer = setTimeout(() => reject(new Error(`service did not start:\n${logs.join("\n")}`)), 60_000);
    child.stderr!.on("data", (chunk: Buffer) => {
      buffer += chunk.toString();
      let nl: number;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        logs.push(line);
        // Parsed only until the service listens: under load the access log writes a line per call.
        if (listening) continue;
        try {
          const entry = JSON.parse(line) as { message?: string; port?: number };
          if (entry.message === "listening" && typeof entry.port === "number") {
            clearTimeout(timer);
            listening = true;
            resolve(entry.port);
          }
        } catch {
          // Not a log line (e.g. a warning from Node); kept in logs.
        }
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`service exited with ${code}:\n${logs.join("\n")}`));
    });
  });
  return {
    port,
    child,
    logs,
    async stop() {
      if (child.exitCode !== null) return child.exitCode;
      child.kill("SIGTERM");
      const [code] = (await once(child, "exit")) as [number | null];
      return code;
    },
  };
}
