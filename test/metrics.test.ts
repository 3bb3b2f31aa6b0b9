import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ModelType } from "../gen/ml/v1/ml_pb.ts";
import { syntheticSamples, syntheticUsers } from "../src/ml/synthetic.ts";
import { createMetrics, type Metrics } from "../src/metrics.ts";
import { protocolOf } from "../src/server/metrics.ts";
import { sampleMessages } from "./support/fixtures.ts";
import { startTestService, type TestService } from "./support/service.ts";

/** What the parts of the service report: calls, training jobs, the prediction log, feedback by source. */
let s: TestService;
let metrics: Metrics;
const NOW = Date.UTC(2026, 10, 26, 9);

beforeAll(async () => {
  metrics = createMetrics();
  s = await startTestService({ clock: () => NOW, metrics });
});
afterAll(async () => {
  await s?.close();
});

const value = async (series: string) => {
  const line = (await metrics.text()).split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
};

describe("metrics", () => {
  it("count calls by RPC and code, time training jobs, the prediction log's writes and live accuracy by source", async () => {
    const user = syntheticUsers(1, 5)[0]!;
    await s.client.ingestTrainingData({ samples: sampleMessages("m-1", syntheticSamples(user, 40, 1)) });
    await s.client.train({ userId: "m-1", modelType: ModelType.ENERGY_PREDICTION });
    const activity = { tasksCompletedToday: 1, avgEnergyLast7Days: 2 };
    const ids: string[] = [];
    for (const userId of ["m-1", "m-1", "nobody"]) {
      ids.push((await s.client.predict({ userId, targetTime: timestampFromMs(NOW), recentActivity: activity })).predictionId);
    }
    await s.client.feedback({ predictionId: ids[0]!, wasCorrect: true });
    await s.client.feedback({ predictionId: ids[1]!, wasCorrect: false });
    await s.client.feedback({ predictionId: ids[2]!, wasCorrect: true });
    await s.client.feedback({ predictionId: "00000000-0000-4000-8000-000000000000", wasCorrect: true }).catch(() => undefined);

    expect(await value('ml_rpc_duration_seconds_count{method="Predict",protocol="connect",code="ok"}')).toBe(3);
    expect(await value('ml_rpc_duration_seconds_count{method="Feedback",protocol="connect",code="not_found"}')).toBe(1);
    expect(await value('ml_training_job_duration_seconds_count{kind="energy-user",outcome="ok"}')).toBe(1);
    expect(await value('ml_feedback_total{model_source="user",correct="true"}')).toBe(1);
    expect(await value('ml_feedback_total{model_source="user",correct="false"}')).toBe(1);
    expect(await value('ml_live_accuracy{model_source="user"}')).toBe(0.5);
    expect(await value('ml_live_accuracy{model_source="prior"}')).toBe(1);
    // Feedback wrote the buffered predictions first: three rows, in batches that each took some time.
    expect(await value('ml_prediction_log_rows_total{outcome="ok"}')).toBe(3);
    expect(await value('ml_prediction_log_flush_seconds_count{outcome="ok"}')).toBeGreaterThanOrEqual(1);
    expect(await value("ml_model_cache_entries")).toBeGreaterThanOrEqual(1);
    expect(await value('ml_active_version_cache_lookups_total{result="hit"}')).toBeGreaterThanOrEqual(1);
  });

  it("tell the protocol from the content type", () => {
    expect(protocolOf("application/grpc")).toBe("grpc");
    expect(protocolOf("application/grpc+proto")).toBe("grpc");
    expect(protocolOf("application/grpc-web+proto")).toBe("grpc-web");
    expect(protocolOf("application/json")).toBe("connect");
    expect(protocolOf(null)).toBe("connect");
  });
});
