/**
 * Small named domain errors. Code below the API throws these; the one
 * interceptor in src/server/errors.ts turns them into Connect codes.
 */

/** A request field is missing or out of range. */
export class InvalidInput extends Error {
  override readonly name = "InvalidInput";
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
  }
}

/** Something the caller named does not exist. */
export class NotFound extends Error {
  override readonly name = "NotFound";
}

/** Training was asked for with fewer samples than a model needs. */
export class NotEnoughTrainingData extends Error {
  override readonly name = "NotEnoughTrainingData";
  constructor(
    readonly userId: string,
    readonly modelType: string,
    readonly have: number,
    readonly need: number,
    message?: string,
  ) {
    super(
      message ??
        `user "${userId}" has ${have} ${modelType} training sample(s); at least ${need} are needed ` +
          `(add more with IngestTrainingData or Feedback, then call Train again)`,
    );
  }
}

/** The request is valid but the system is not in a state to answer it. */
export class PreconditionFailed extends Error {
  override readonly name = "PreconditionFailed";
}

/** The database cannot be reached now; the caller may retry (UNAVAILABLE). */
export class DatabaseUnavailable extends Error {
  override readonly name = "DatabaseUnavailable";
}

/** A stored model could not be read back. */
export class ModelLoadFailed extends Error {
  override readonly name = "ModelLoadFailed";
  constructor(
    readonly modelId: string,
    reason: string,
    options?: ErrorOptions,
  ) {
    super(`model ${modelId} could not be loaded: ${reason}`, options);
  }
}

/** A queued training job failed on every attempt, or left the queue; the caller may retry (UNAVAILABLE). */
export class TrainingJobFailed extends Error {
  override readonly name = "TrainingJobFailed";
}
