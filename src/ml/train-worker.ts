import { trainModel, type TrainJob, type TrainResult } from "./train-model.ts";

/** Piscina entry point: one training job per call, run off the event loop. */
export default function runTrainJob(job: TrainJob): TrainResult {
  return trainModel(job);
}
