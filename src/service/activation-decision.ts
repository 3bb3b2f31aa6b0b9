import type { ModelRow } from "../db/models.ts";
import type { TrainResult } from "../ml/train-model.ts";

/** What the decision needs of the active version (null: there is none). */
export type ActiveVersion = Pick<ModelRow, "version" | "training_accuracy"> | null;

/** Whether a new version goes live, and the sentence the activation log keeps. */
export interface ActivationDecision {
  readonly activate: boolean;
  readonly reason: string;
}

function percent(x: number): string {
  return `${(x * 100).toFixed(1)}%`;
}

/**
 * Decides whether a freshly trained version replaces the active one. Pure, so
 * every branch is pinned by a table test:
 * - a first population model must beat its baseline (the prior) on the same held-out users;
 * - any other first version goes live;
 * - with enough rows the active version never saw, the two meet head to head there;
 * - otherwise the held-out scores decide (the same rows when the data did not change).
 */
export function decideActivation(
  active: ActiveVersion,
  result: Pick<TrainResult, "evaluation" | "comparison" | "baseline">,
  what: string,
  minComparisonSamples: number,
): ActivationDecision {
  const { evaluation, comparison, baseline } = result;
  if (active === null && baseline !== undefined) {
    // The first population model must not make anyone worse off than the prior it replaces
    // (where it cannot beat the prior for new users, its cold answer is the prior's).
    const activate = evaluation.accuracy >= baseline.accuracy;
    return {
      activate,
      reason:
        `first ${what} model: held-out accuracy ${percent(evaluation.accuracy)} against ${percent(baseline.accuracy)} for the ` +
        `${baseline.name} on the same users (${evaluation.method})` +
        (activate ? "" : "; the prior keeps answering"),
    };
  }
  if (active === null) return { activate: true, reason: `first ${what} model (held-out accuracy ${percent(evaluation.accuracy)}, ${evaluation.method})` };
  if (comparison !== undefined && comparison.samples >= minComparisonSamples) {
    const activate = comparison.candidateAccuracy >= comparison.activeAccuracy;
    return {
      activate,
      reason:
        `on the ${comparison.samples} most recent samples, which ${active.version} never saw, the new version scored ` +
        `${percent(comparison.candidateAccuracy)} against ${percent(comparison.activeAccuracy)}` +
        (activate ? "" : `; ${active.version} stays active`),
    };
  }
  const previous = active.training_accuracy ?? 0;
  const activate = evaluation.accuracy >= previous;
  return {
    activate,
    reason:
      `by ${evaluation.method}, the new version scored ${percent(evaluation.accuracy)} against ` +
      `${percent(previous)} for ${active.version}` +
      (comparison === undefined ? "" : ` (only ${comparison.samples} new samples, too few for a head-to-head test)`) +
      (activate ? "" : `; ${active.version} stays active`),
  };
}
