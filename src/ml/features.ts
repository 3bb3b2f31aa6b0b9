import type { EnergyFeatureValues } from "../domain.ts";

/**
 * Feature code shared by training and prediction, so the two can never
 * disagree on what a column means. Pure: no I/O.
 */

/** Column order of an energy feature row (the spec's five features; NaN = missing sleep). */
export const ENERGY_FEATURE_NAMES = ["hour_of_day", "day_of_week", "tasks_completed_today", "avg_energy_last_7_days", "sleep_quality"] as const;

/** Turns stored or requested features into the row the forest sees. */
export function energyFeatureRow(f: EnergyFeatureValues): number[] {
  return [f.hour_of_day, f.day_of_week, f.tasks_completed_today, f.avg_energy_last_7_days, f.sleep_quality ?? Number.NaN];
}

const formatters = new Map<string, Intl.DateTimeFormat>();
const WEEKDAYS: Record<string, number> = { Mon: 0, Tue: 1, Wed: 2, Thu: 3, Fri: 4, Sat: 5, Sun: 6 };

/** Throws RangeError for a zone name Intl does not know. */
function formatterFor(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (f === undefined) {
    f = new Intl.DateTimeFormat("en-US", { timeZone, hour: "2-digit", hourCycle: "h23", weekday: "short" });
    formatters.set(timeZone, f);
  }
  return f;
}

/** True when Intl accepts the IANA zone name. */
export function isValidTimeZone(timeZone: string): boolean {
  try {
    formatterFor(timeZone);
    return true;
  } catch {
    return false;
  }
}

const QUARTER_HOUR = 900_000;
const localTimes = new Map<string, { hour: number; weekday: number }>();

/**
 * Hour (0-23) and weekday (0 = Monday) of an instant in a time zone.
 * Every UTC offset in use today is a multiple of 15 minutes, so the answer is the
 * same across a quarter hour; Intl is slow enough to show in a Predict
 * profile, so answers are remembered per zone and quarter hour.
 */
export function localHourAndWeekday(epochMs: number, timeZone: string): { hour: number; weekday: number } {
  const key = `${timeZone}|${Math.floor(epochMs / QUARTER_HOUR)}`;
  const known = localTimes.get(key);
  if (known !== undefined) return known;
  let hour = 0;
  let weekday = 0;
  for (const part of formatterFor(timeZone).formatToParts(epochMs)) {
    if (part.type === "hour") hour = Number(part.value) % 24;
    else if (part.type === "weekday") weekday = WEEKDAYS[part.value] ?? 0;
  }
  if (localTimes.size >= 50_000) localTimes.clear();
  const answer = { hour, weekday };
  localTimes.set(key, answer);
  return answer;
}
