import { mkdirSync } from "node:fs";
import { open, readFile, rm } from "node:fs/promises";
import { dirname } from "node:path";
import { z } from "zod";
import type { NewPrediction } from "../db/predictions.ts";

/**
 * Where logged predictions go when PostgreSQL cannot take them: an
 * append-only file of JSON lines, fsynced before the batch counts as
 * written, replayed into the database when it is back and on the next start.
 * One file per process (give each replica its own directory).
 */
export interface PredictionSpill {
  readonly file: string;
  /** Appends rows and fsyncs them: after this resolves they survive a crash. */
  append(rows: readonly NewPrediction[]): Promise<void>;
  /** Every row in the file (a line cut short by a crash mid-write is skipped). */
  read(): Promise<NewPrediction[]>;
  /** Removes the file once its rows are in the database. */
  clear(): Promise<void>;
}

// The rows read back are parsed like any other row: a damaged file must not put garbage in the database.
const SpilledRow = z.object({
  predictionId: z.string().uuid(),
  modelId: z.string().uuid().nullable(),
  userId: z.string(),
  type: z.enum(["energy_prediction", "task_suggestion"]),
  value: z.record(z.string(), z.unknown()),
  confidence: z.number().nullable(),
  createdAt: z.number().optional(),
});

/** Opens (lazily) the spill file at `file`. */
export function createPredictionSpill(file: string): PredictionSpill {
  return {
    file,
    async append(rows) {
      mkdirSync(dirname(file), { recursive: true });
      const handle = await open(file, "a");
      try {
        // When it was spilled stands in for when it was predicted (at most a few seconds apart).
        const at = Date.now();
        // A leading newline: a line a crash cut short stays alone (and is skipped) instead of swallowing this batch's first row.
        await handle.appendFile("\n" + rows.map((r) => JSON.stringify({ ...r, createdAt: r.createdAt ?? at })).join("\n") + "\n");
        await handle.sync();
      } finally {
        await handle.close();
      }
    },
    async read() {
      let text: string;
      try {
        text = await readFile(file, "utf8");
      } catch (err) {
        if ((err as { code?: string }).code === "ENOENT") return [];
        throw err;
      }
      const rows: NewPrediction[] = [];
      for (const line of text.split("\n")) {
        if (line.trim() === "") continue;
        let parsed: unknown;
        try {
          parsed = JSON.parse(line);
        } catch {
          continue;
        }
        const row = SpilledRow.safeParse(parsed);
        if (row.success) rows.push(row.data as NewPrediction);
      }
      return rows;
    },
    async clear() {
      await rm(file, { force: true });
    },
  };
}
