import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { SuggestTasksResponseSchema, type MlService } from "../../gen/ml/v1/ml_pb.ts";
import type { Suggester } from "../service/suggester.ts";
import { energyLevel } from "./convert.ts";
import * as v from "./validate.ts";

/** Default and largest number of suggestions. */
export const SUGGESTION_LIMITS = { default: 5, max: 50 } as const;

/** SuggestTasks: ranks open tasks for the given (or predicted) energy, logged for Feedback. */
export function createSuggestTasksHandler({ suggester, clock }: { suggester: Suggester; clock: () => number }): ServiceImpl<typeof MlService>["suggestTasks"] {
  return async (req) => {
    const limit = v.limit(req.limit, SUGGESTION_LIMITS.default, SUGGESTION_LIMITS.max);
    const result = await suggester.suggest({
      userId: v.userId(req.userId),
      energy: req.currentEnergy === undefined ? null : v.energy(req.currentEnergy, "current_energy"),
      limit,
      now: clock(),
      prediction: {
        timeZone: v.timeZone(req.timeZone),
        activity: v.recentActivity(req.recentActivity, "recent_activity", false),
      },
    });
    return create(SuggestTasksResponseSchema, {
      suggestionId: result.suggestionId,
      energy: energyLevel(result.energy),
      energyPredicted: result.energyPredicted,
      suggestions: result.suggestions.map((s) => ({
        taskId: s.taskId,
        taskTitle: s.title,
        matchScore: s.matchScore,
        reasoning: s.reasoning,
      })),
    });
  };
}
