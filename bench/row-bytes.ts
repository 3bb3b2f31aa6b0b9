// Bytes per stored row on PostgreSQL (heap + indexes), for the capacity plan: run with TEST_DATABASE_URL set.
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { sql } from "slonik";
import { startTestService } from "../test/support/service.ts";
import { clearPatternMessages } from "../test/support/fixtures.ts";
const s = await startTestService();
await s.client.ingestTrainingData({ samples: clearPatternMessages("bytes", 2000) });
for (let i = 0; i < 5000; i++)
  await s.client.predict({
    userId: `u${i % 50}`,
    targetTime: timestampFromMs(Date.UTC(2026, 10, 26, i % 24)),
    recentActivity: { avgEnergyLast7Days: 2, sleepQuality: 0.7 },
  });
await s.app.predictionLog.flush();
await s.db.pool.query(sql.unsafe`VACUUM ANALYZE`);
const predBytes = await s.db.pool.oneFirst(
  sql.unsafe`SELECT sum(pg_total_relation_size(c.oid))::float8 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'model_predictions'`,
);
const trainBytes = await s.db.pool.oneFirst(sql.unsafe`SELECT pg_total_relation_size('training_data')::float8`);
console.log(JSON.stringify({ predictionRowBytes: Math.round(Number(predBytes) / 5000), trainingRowBytes: Math.round(Number(trainBytes) / 2000) }));
await s.close();
process.exit(0);
