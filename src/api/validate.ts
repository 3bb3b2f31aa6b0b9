import { POPULATION } from "../domain.ts";
import { timestampMs, type Timestamp } from "@bufbuild/protobuf/wkt";
import type { EnergyLevel, ModelType, RecentActivity as RecentActivityMessage } from "../../gen/ml/v1/ml_pb.ts";
import type { EnergyLabel, ModelTypeName } from "../domain.ts";
import { InvalidInput } from "../errors.ts";
import { isValidTimeZone } from "../ml/features.ts";
import type { RecentActivity } from "../service/predictor.ts";
import { energyLabel, modelTypeName } from "./convert.ts";

/**
 * Request checks, run before any work starts. Each failure names the field,
 * so a caller can fix the request without reading our code.
 */

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
// PostgreSQL text cannot hold NUL; other C0 controls (and DEL) have no place in ids, titles or zone names.
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is what it is for.
const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/;

/** Earliest and latest instants a timestamp may name: 1970-01-01 and 2200-01-01 UTC (what dates, zones and PostgreSQL all hold). */
export const TIMESTAMP_RANGE = { minMs: 0, maxMs: Date.UTC(2200, 0, 1) } as const;

/** What an error message may quote of a caller's string: a short prefix, so a huge value never comes back in a header. */
export function quote(value: string, max = 40): string {
  return JSON.stringify(value.length > max ? `${value.slice(0, max)}…` : value);
}

/** A string of 1 to `max` characters (after trimming) without control characters. */
export function text(value: string, field: string, max: number): string {
  const trimmed = value.trim();
  if (trimmed.length === 0) throw new InvalidInput(field, "is required");
  if (trimmed.length > max) throw new InvalidInput(field, `is ${trimmed.length} characters; at most ${max} are allowed`);
  const bad = CONTROL.exec(trimmed);
  if (bad !== null)
    throw new InvalidInput(field, `contains the control character U+${bad[0].charCodeAt(0).toString(16).padStart(4, "0").toUpperCase()} at ${bad.index}`);
  return trimmed;
}

/** A non-empty user id of at most 255 characters. */
export function userId(value: string, field = "user_id"): string {
  return text(value, field, 255);
}

/** A UUID in canonical text form, lower-cased. */
export function uuid(value: string, field: string): string {
  if (!UUID.test(value)) throw new InvalidInput(field, `${quote(value)} is not a UUID`);
  return value.toLowerCase();
}

/** A set energy level. */
export function energy(value: EnergyLevel, field: string): EnergyLabel {
  const label = energyLabel(value);
  if (label === null) throw new InvalidInput(field, "must be LOW, MEDIUM or HIGH");
  return label;
}

/** A set model type. */
export function modelType(value: ModelType, field = "model_type"): ModelTypeName {
  const name = modelTypeName(value);
  if (name === null) throw new InvalidInput(field, "must be ENERGY_PREDICTION or TASK_SUGGESTER");
  return name;
}

/** A present timestamp within TIMESTAMP_RANGE, as epoch milliseconds (checked before any date arithmetic). */
export function timestamp(value: Timestamp | undefined, field: string): number {
  if (value === undefined) throw new InvalidInput(field, "is required");
  if (value.nanos < 0 || value.nanos > 999_999_999) throw new InvalidInput(field, "is not a valid timestamp (nanos outside 0-999999999)");
  const seconds = Number(value.seconds);
  if (!Number.isFinite(seconds) || seconds < TIMESTAMP_RANGE.minMs / 1000 || seconds >= TIMESTAMP_RANGE.maxMs / 1000) {
    throw new InvalidInput(field, `${String(value.seconds)} s is outside 1970-01-01 to 2200-01-01 UTC`);
  }
  return timestampMs(value);
}

/** A number within [min, max]. */
export function inRange(value: number, min: number, max: number, field: string): number {
  if (!Number.isFinite(value) || value < min || value > max) throw new InvalidInput(field, `${value} is outside ${min}-${max}`);
  return value;
}

/** A known IANA zone name; empty means UTC. */
export function timeZone(value: string, field = "time_zone"): string {
  if (value === "") return "UTC";
  if (value.length > 64 || !isValidTimeZone(value)) throw new InvalidInput(field, `${quote(value)} is not an IANA time zone (e.g. "Europe/Berlin")`);
  return value;
}

/** Recent activity, required or defaulted to a medium week with nothing done. */
export function recentActivity(value: RecentActivityMessage | undefined, field: string, required: boolean): RecentActivity {
  if (value === undefined) {
    if (required) throw new InvalidInput(field, "is required");
    return { tasksCompletedToday: 0, avgEnergyLast7Days: 2, sleepQuality: null };
  }
  return {
    tasksCompletedToday: inRange(value.tasksCompletedToday, 0, 1000, `${field}.tasks_completed_today`),
    avgEnergyLast7Days: inRange(value.avgEnergyLast7Days, 1, 3, `${field}.avg_energy_last_7_days`),
    sleepQuality: value.sleepQuality === undefined ? null : inRange(value.sleepQuality, 0, 1, `${field}.sleep_quality`),
  };
}

/** Whose model a request means: a user's, or (population = true, user_id empty) the population's. */
export function modelOwner(user: string, population: boolean, type: ModelTypeName): { userId: string } {
  if (!population) return { userId: userId(user) };
  if (user.trim() !== "") throw new InvalidInput("user_id", "must be empty when population is true");
  if (type !== "energy_prediction") throw new InvalidInput("model_type", "the population model is ENERGY_PREDICTION only");
  return { userId: POPULATION };
}

/** A page size: 0 (proto3's unset) means `fallback`; above `max` is refused rather than silently cut. */
export function limit(value: number, fallback: number, max: number, field = "limit"): number {
  const n = value === 0 ? fallback : value;
  if (n > max) throw new InvalidInput(field, `${n} is more than ${max}`);
  return n;
}
