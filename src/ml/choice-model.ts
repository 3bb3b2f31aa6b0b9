import type { EnergyLabel, TaskRecord } from "../domain.ts";
import { ruleValue } from "./task-ranking.ts";

/**
 * Learning to rank from picks: a conditional logit (softmax over the user's
 * open tasks) on task x context features. P(pick task j) = exp(w·x_j) / Σ_k
 * exp(w·x_k). A user's weights are the population's plus a per-user offset
 * shrunk toward zero; the population's are shrunk toward the rules (the only
 * non-zero prior weight is on the rule score). Pure: no I/O.
 */

const HOUR = 3_600_000;
const LEVEL: Record<EnergyLabel, number> = { low: 0, medium: 1, high: 2 };
/** Buckets a category name is hashed into (twice, with signs, so two categories rarely share both). */
const CATEGORY_BUCKETS = 16;

/** The context of one choice: what the user's day looks like when they pick. */
export interface ChoiceContext {
  readonly energy: EnergyLabel;
  /** Local hour 0-23. */
  readonly hour: number;
  readonly weekend: boolean;
  /** Epoch ms. */
  readonly now: number;
}

/** The parts of a task the model reads (what task_choices stores per open task). */
export type ChoiceTask = Pick<TaskRecord, "category" | "energyRequired" | "estimatedMinutes" | "priority" | "dueAt">;

/** Which factor each feature belongs to, for reasons. */
export type Factor = "rules" | "due" | "priority" | "energy" | "length" | "category" | "weekend-category";

const BASE_FEATURES: readonly (readonly [string, Factor])[] = [
  ["rule_score", "rules"],
  ["overdue", "due"],
  ["due_within_day", "due"],
  ["due_within_week", "due"],
  ["no_due_date", "due"],
  ["soonest_due", "due"],
  ["due_rank", "due"],
  ["priority", "priority"],
  ["priority_1", "priority"],
  ["top_priority_open", "priority"],
  ...(["low", "medium", "high"] as const).flatMap((e) =>
    (["low", "medium", "high"] as const).map((d): readonly [string, Factor] => [`demand_${d}_at_${e}`, "energy"]),
  ),
  ["demand_x_hour", "energy"],
  ["length", "length"],
  ["length_x_morning", "length"],
  ["length_x_afternoon", "length"],
  ["length_x_evening", "length"],
  ["length_off_40min_x_afternoon", "length"],
  ["length_x_weekend", "length"],
  // Where the task's length stands among the open ones (0 shortest, 1 longest), by time of day.
  ["length_rank_x_morning", "length"],
  ["length_rank_x_afternoon", "length"],
  ["length_rank_x_evening", "length"],
];

/** Names of the model's features, in weight order. */
export const CHOICE_FEATURE_NAMES: readonly string[] = [
  ...BASE_FEATURES.map(([n]) => n),
  ...Array.from({ length: CATEGORY_BUCKETS }, (_, i) => `category_${i}`),
  ...Array.from({ length: CATEGORY_BUCKETS }, (_, i) => `category_${i}_x_weekend`),
];
/** The factor of each feature, in weight order. */
export const CHOICE_FEATURE_FACTORS: readonly Factor[] = [
  ...BASE_FEATURES.map(([, f]) => f),
  ...Array<Factor>(CATEGORY_BUCKETS).fill("category"),
  ...Array<Factor>(CATEGORY_BUCKETS).fill("weekend-category"),
];
/** Number of weights. */
export const CHOICE_DIMENSIONS = CHOICE_FEATURE_NAMES.length;
const CATEGORY_OFFSET = BASE_FEATURES.length;

/**
 * Weight of the rule score in the prior: before anyone has picked, the model
 * is the rules made into probabilities (a rule score 0.3 higher makes a task
 * about 3x as likely).
 */
export const RULE_PRIOR_WEIGHT = 4;

/** The prior weights: the rules alone. */
export function priorWeights(): Float64Array {
  const w = new Float64Array(CHOICE_DIMENSIONS);
  w[0] = RULE_PRIOR_WEIGHT;
  return w;
}

function fnv(text: string, seed: number): number {
  let h = seed;
  for (const ch of text.trim().toLowerCase()) {
    h ^= ch.codePointAt(0)!;
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

const categoryHashes = new Map<string, readonly [number, number, number, number]>();
/** Two signed buckets of a category (memoised: the set of categories is small). */
function categorySlots(category: string): readonly [number, number, number, number] {
  let slots = categoryHashes.get(category);
  if (slots === undefined) {
    const a = fnv(category, 0x811c9dc5);
    const b = fnv(category, 0x9747b28c);
    let second = b % CATEGORY_BUCKETS;
    if (second === a % CATEGORY_BUCKETS) second = (second + 1) % CATEGORY_BUCKETS;
    slots = [a % CATEGORY_BUCKETS, (a >>> 16) & 1 ? 1 : -1, second, (b >>> 16) & 1 ? 1 : -1];
    if (categoryHashes.size < 10_000) categoryHashes.set(category, slots);
  }
  return slots;
}

/**
 * Feature rows of a choice set: one row per open task. Some features are
 * relative to the other open tasks (the soonest due, the top priority open),
 * because a pick is a comparison among them.
 */
export function choiceFeatures(tasks: readonly ChoiceTask[], ctx: ChoiceContext): Float64Array[] {
  const n = tasks.length;
  const dueOrder = tasks.map((t, i) => ({ i, due: t.dueAt ?? Number.POSITIVE_INFINITY })).sort((a, b) => a.due - b.due);
  const dueRank = new Float64Array(n);
  const lengthRank = new Float64Array(n);
  if (n > 1) {
    // How many open tasks are strictly shorter: one sort and a binary search each (n log n, not n^2, for a long list).
    const lengths = Float64Array.from(tasks, (t) => t.estimatedMinutes).sort();
    tasks.forEach((t, i) => {
      let lo = 0;
      let hi = n;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (lengths[mid]! < t.estimatedMinutes) lo = mid + 1;
        else hi = mid;
      }
      lengthRank[i] = lo / (n - 1);
    });
  }
  dueOrder.forEach(({ i }, r) => (dueRank[i] = n > 1 ? r / (n - 1) : 0));
  let soonest = Number.POSITIVE_INFINITY;
  let topPriority = 5;
  for (const t of tasks) {
    if (t.dueAt !== null && t.dueAt < soonest) soonest = t.dueAt;
    if (t.priority < topPriority) topPriority = t.priority;
  }
  const hourC = (ctx.hour - 14) / 5;
  const morning = ctx.hour < 12 ? 1 : 0;
  const afternoon = ctx.hour >= 12 && ctx.hour < 17 ? 1 : 0;
  const evening = ctx.hour >= 17 ? 1 : 0;
  const weekend = ctx.weekend ? 1 : 0;
  return tasks.map((t, i) => {
    const x = new Float64Array(CHOICE_DIMENSIONS);
    x[0] = ruleValue(t, ctx.energy, ctx.now);
    const hours = t.dueAt === null ? null : (t.dueAt - ctx.now) / HOUR;
    x[1] = hours !== null && hours < 0 ? 1 : 0;
    x[2] = hours !== null && hours >= 0 ? Math.exp(-hours / 24) : 0;
    x[3] = hours !== null && hours >= 0 ? Math.exp(-hours / 120) : 0;
    x[4] = hours === null ? 1 : 0;
    x[5] = t.dueAt !== null && t.dueAt === soonest ? 1 : 0;
    x[6] = 1 - dueRank[i]!;
    // Levels above the lowest, unscaled: one level is a unit step, so the ridge lets a user's strict order through.
    x[7] = 4 - t.priority;
    x[8] = t.priority === 1 ? 1 : 0;
    x[9] = t.priority === topPriority ? 1 : 0;
    x[10 + LEVEL[ctx.energy] * 3 + LEVEL[t.energyRequired]] = 1;
    x[19] = (LEVEL[t.energyRequired] - 1) * hourC;
    const len = Math.log2(Math.max(1, t.estimatedMinutes) / 40) / 2;
    x[20] = len;
    x[21] = len * morning;
    x[22] = len * afternoon;
    x[23] = len * evening;
    x[24] = Math.abs(len) * afternoon;
    x[25] = len * weekend;
    x[26] = lengthRank[i]! * morning;
    x[27] = lengthRank[i]! * afternoon;
    x[28] = lengthRank[i]! * evening;
    const [a, sa, b, sb] = categorySlots(t.category);
    x[CATEGORY_OFFSET + a] = sa;
    x[CATEGORY_OFFSET + b] = sb;
    if (weekend) {
      x[CATEGORY_OFFSET + CATEGORY_BUCKETS + a] = sa;
      x[CATEGORY_OFFSET + CATEGORY_BUCKETS + b] = sb;
    }
    return x;
  });
}

function dot(w: Float64Array, x: Float64Array): number {
  let s = 0;
  for (let i = 0; i < w.length; i++) s += w[i]! * x[i]!;
  return s;
}

/** P(pick) of each row under weights w (a softmax over the choice set). */
export function choiceProbabilities(w: Float64Array, rows: readonly Float64Array[]): number[] {
  const u = rows.map((x) => dot(w, x));
  const max = Math.max(...u);
  const e = u.map((v) => Math.exp(v - max));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / z);
}

/** One observed pick: the open tasks' rows and which one was chosen. */
export interface ObservedChoice {
  readonly rows: readonly Float64Array[];
  readonly chosen: number;
}

/** Options of a MAP fit: the prior mean, its strength, where to start and how many Newton steps. */
export interface ChoiceFitOptions {
  /** Weights are shrunk toward these. */
  readonly prior: Float64Array;
  /** Ridge strength toward the prior (per weight). */
  readonly lambda: number;
  /** Starting point (a warm start); defaults to the prior. */
  readonly start?: Float64Array;
  readonly iterations: number;
}

/** Negative log-likelihood of the choices plus the ridge, at w. */
export function choiceObjective(choices: readonly ObservedChoice[], w: Float64Array, options: Pick<ChoiceFitOptions, "prior" | "lambda">): number {
  let loss = 0;
  for (const c of choices) {
    const u = c.rows.map((x) => dot(w, x));
    const max = Math.max(...u);
    loss += max + Math.log(u.reduce((a, v) => a + Math.exp(v - max), 0)) - u[c.chosen]!;
  }
  for (let i = 0; i < w.length; i++) loss += (options.lambda / 2) * (w[i]! - options.prior[i]!) ** 2;
  return loss;
}

/**
 * Adds one choice's gradient and Hessian (lower triangle) at w into g and h,
 * and returns its negative log-likelihood at w.
 * Rows are sparse (a task sets about 15 of the features), so the second
 * moments walk only each row's non-zero pairs.
 */
export function accumulateChoice(c: ObservedChoice, w: Float64Array, g: Float64Array, h: Float64Array): number {
  const d = w.length;
  const u = c.rows.map((x) => dot(w, x));
  const max = Math.max(...u);
  const e = u.map((v) => Math.exp(v - max));
  const z = e.reduce((a, b) => a + b, 0);
  const p = e.map((v) => v / z);
  const mean = new Float64Array(d);
  const nz = new Int32Array(d);
  c.rows.forEach((x, j) => {
    const pj = p[j]!;
    if (pj < 1e-12) return;
    let n = 0;
    for (let a = 0; a < d; a++) if (x[a] !== 0) nz[n++] = a;
    for (let i = 0; i < n; i++) {
      const a = nz[i]!;
      const pxa = pj * x[a]!;
      mean[a]! += pxa;
      const row = a * d;
      for (let k = 0; k <= i; k++) {
        const b = nz[k]!;
        h[row + b]! += pxa * x[b]!;
      }
    }
  });
  const chosen = c.rows[c.chosen]!;
  let n = 0;
  for (let a = 0; a < d; a++) {
    g[a]! += mean[a]! - chosen[a]!;
    if (mean[a] !== 0) nz[n++] = a;
  }
  for (let i = 0; i < n; i++) {
    const a = nz[i]!;
    const ma = mean[a]!;
    const row = a * d;
    for (let k = 0; k <= i; k++) {
      const b = nz[k]!;
      h[row + b]! -= ma * mean[b]!;
    }
  }
  // This choice's negative log-likelihood at w, which the Newton step gets for free.
  return max + Math.log(z) - u[c.chosen]!;
}

/** Solves (h) x = g for symmetric positive definite h given as a lower triangle (Cholesky, in place). */
export function solveSymmetric(h: Float64Array, g: Float64Array): Float64Array {
  const d = g.length;
  for (let j = 0; j < d; j++) {
    let s = h[j * d + j]!;
    for (let k = 0; k < j; k++) s -= h[j * d + k]! ** 2;
    const diag = Math.sqrt(Math.max(s, 1e-12));
    h[j * d + j] = diag;
    for (let i = j + 1; i < d; i++) {
      let t = h[i * d + j]!;
      for (let k = 0; k < j; k++) t -= h[i * d + k]! * h[j * d + k]!;
      h[i * d + j] = t / diag;
    }
  }
  const y = new Float64Array(d);
  for (let i = 0; i < d; i++) {
    let t = g[i]!;
    for (let k = 0; k < i; k++) t -= h[i * d + k]! * y[k]!;
    y[i] = t / h[i * d + i]!;
  }
  for (let i = d - 1; i >= 0; i--) {
    let t = y[i]!;
    for (let k = i + 1; k < d; k++) t -= h[k * d + i]! * y[k]!;
    y[i] = t / h[i * d + i]!;
  }
  return y;
}

/**
 * MAP weights by damped Newton steps: the loss is convex, so a few steps from
 * a warm start converge; a step that does not lower the objective is halved.
 * A generator that yields after every `chunk` choices, so a large fit can give
 * the event loop back between chunks (fitChoiceModelInSlices).
 */
function* newtonSteps(choices: readonly ObservedChoice[], options: ChoiceFitOptions, chunk: number): Generator<void, Float64Array> {
  const d = options.prior.length;
  let w = Float64Array.from(options.start ?? options.prior);
  for (let it = 0; it < options.iterations; it++) {
    const g = new Float64Array(d);
    const h = new Float64Array(d * d);
    let current = 0;
    for (let i = 0; i < choices.length; i++) {
      current += accumulateChoice(choices[i]!, w, g, h);
      if ((i + 1) % chunk === 0) yield;
    }
    for (let a = 0; a < d; a++) {
      g[a]! += options.lambda * (w[a]! - options.prior[a]!);
      h[a * d + a]! += options.lambda;
      current += (options.lambda / 2) * (w[a]! - options.prior[a]!) ** 2;
    }
    const step = solveSymmetric(h, g);
    let scale = 1;
    for (let tries = 0; tries < 6; tries++, scale /= 2) {
      const next = w.map((v, i) => v - scale * step[i]!);
      const value = choiceObjective(choices, next, options);
      yield;
      if (value <= current) {
        w = next;
        break;
      }
    }
  }
  return w;
}

/** MAP weights of the choices (see newtonSteps), in one go: for a user's few dozen picks. */
export function fitChoiceModel(choices: readonly ObservedChoice[], options: ChoiceFitOptions): Float64Array {
  const steps = newtonSteps(choices, options, Number.MAX_SAFE_INTEGER);
  for (;;) {
    const r = steps.next();
    if (r.done === true) return r.value;
  }
}

/** The same fit in slices of `chunk` choices, awaiting `pause` between slices (for the population's thousands of picks). */
export async function fitChoiceModelInSlices(
  choices: readonly ObservedChoice[],
  options: ChoiceFitOptions,
  chunk: number,
  pause: () => Promise<void>,
): Promise<Float64Array> {
  const steps = newtonSteps(choices, options, chunk);
  for (;;) {
    const r = steps.next();
    if (r.done === true) return r.value;
    await pause();
  }
}

/** What ranked a task: each factor's contribution to its score relative to the average open task. */
export function factorContributions(w: Float64Array, rows: readonly Float64Array[], index: number): Map<Factor, number> {
  const d = w.length;
  const mean = new Float64Array(d);
  for (const x of rows) for (let a = 0; a < d; a++) mean[a]! += x[a]! / rows.length;
  const out = new Map<Factor, number>();
  const x = rows[index]!;
  for (let a = 0; a < d; a++) {
    const c = w[a]! * (x[a]! - mean[a]!);
    if (c !== 0) out.set(CHOICE_FEATURE_FACTORS[a]!, (out.get(CHOICE_FEATURE_FACTORS[a]!) ?? 0) + c);
  }
  return out;
}

/** Weights from their stored form; a vector of the wrong length (features changed) is refused. */
export function parseWeights(values: readonly number[]): Float64Array | null {
  return values.length === CHOICE_DIMENSIONS && values.every(Number.isFinite) ? Float64Array.from(values) : null;
}
