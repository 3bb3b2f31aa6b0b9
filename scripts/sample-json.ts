/**
 * Prints an IngestTrainingData request body of synthetic samples, for trying
 * the service by hand: node --import tsx scripts/sample-json.ts USER [COUNT] [SEED]
 */
import { toJson } from "@bufbuild/protobuf";
import { IngestTrainingDataRequestSchema } from "../gen/ml/v1/ml_pb.ts";
import { create } from "@bufbuild/protobuf";
import { syntheticSamples, syntheticUsers } from "../src/ml/synthetic.ts";
import { sampleMessages } from "../test/support/fixtures.ts";

const [userId = "alice", count = "60", seed = "1"] = process.argv.slice(2);
const [user] = syntheticUsers(1, Number(seed));
const samples = sampleMessages(userId, syntheticSamples(user!, Number(count), Number(seed)));
process.stdout.write(`${JSON.stringify(toJson(IngestTrainingDataRequestSchema, create(IngestTrainingDataRequestSchema, { samples })))}\n`);
