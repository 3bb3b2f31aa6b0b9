import { sql, type QuerySqlToken } from "slonik";

/** One versioned schema change; statements run in order inside one transaction. */
export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly statements: readonly QuerySqlToken[];
}

/**
 * The schema, oldest first. Append new migrations; never edit an applied one.
 * Seed tables keep the seed's columns; timestamps are timestamptz so a server
 * in another time zone cannot shift them.
 */
export const migrations: readonly Migration[] = [
  {
    version: 1,
    name: "initial schema",
    statements: [
      sql.unsafe`CREATE TABLE IF NOT EXISTS ml_models (
        model_id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
        user_id VARCHAR(255) NOT NULL,
        model_type VARCHAR(50) NOT NULL CHECK (model_type IN ('energy_prediction', 'task_suggester')),
        version VARCHAR(20) NOT NULL,
        version_number INT NOT NULL,
        model_format VARCHAR(50) NOT NULL,
        model_data BYTEA,
        accuracy_score DECIMAL(5,4),
        training_accuracy DECIMAL(5,4),
        evaluation JSONB NOT NULL DEFAULT '{}'::jsonb,
        training_samples INT,
        training_data_seq BIGINT NOT NULL DEFAULT 0,
        feedback_count INT NOT NULL DEFAULT 0,
        feedback_correct INT NOT NULL DEFAULT 0,
        trained_at TIMESTAMPTZ DEFAULT NOW(),
        is_active BOOLEAN DEFAULT false,
        UNIQUE (user_id, model_type, version_number)
      )`,
      sql.unsafe`CREATE UNIQUE INDEX IF NOT EXISTS ml_models_one_active
        ON ml_models (user_id, model_type) WHERE is_active`,
      sql.unsafe`CREATE TABLE IF NOT EXISTS training_data (
        data_id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
        seq BIGSERIAL NOT NULL UNIQUE,
        user_id VARCHAR(255) NOT NULL,
        model_type VARCHAR(50) NOT NULL DEFAULT 'energy_prediction',
        feature_vector JSONB NOT NULL,
        label VARCHAR(100) NOT NULL,
        source VARCHAR(20) NOT NULL DEFAULT 'ingest',
        prediction_id UUID,
        observed_at TIMESTAMPTZ,
        created_at TIMESTAMPTZ DEFAULT NOW()
      )`,
      sql.unsafe`CREATE INDEX IF NOT EXISTS training_data_user_type_seq
        ON training_data (user_id, model_type, seq)`,
      sql.unsafe`CREATE TABLE IF NOT EXISTS model_predictions (
        prediction_id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
        model_id UUID REFERENCES ml_models(model_id),
        user_id VARCHAR(255) NOT NULL,
        prediction_type VARCHAR(50) NOT NULL,
        prediction_value JSONB NOT NULL,
        confidence_score DECIMAL(5,4),
        was_correct BOOLEAN,
        feedback JSONB,
        feedback_at TIMESTAMPTZ,
        created_at TIMESTAMPTZ DEFAULT NOW()
      )`,
      sql.unsafe`CREATE INDEX IF NOT EXISTS model_predictions_model ON model_predictions (model_id)`,
      sql.unsafe`CREATE INDEX IF NOT EXISTS model_predictions_user_created
        ON model_predictions (user_id, created_at)`,
      sql.unsafe`CREATE TABLE IF NOT EXISTS tasks (
        user_id VARCHAR(255) NOT NULL,
        task_id UUID NOT NULL,
        title TEXT NOT NULL,
        category VARCHAR(100) NOT NULL,
        energy_required VARCHAR(10) NOT NULL CHECK (energy_required IN ('low', 'medium', 'high')),
        estimated_minutes INT NOT NULL,
        priority SMALLINT NOT NULL CHECK (priority BETWEEN 1 AND 4),
        due_at TIMESTAMPTZ,
        status VARCHAR(10) NOT NULL CHECK (status IN ('open', 'done')),
        updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
        PRIMARY KEY (user_id, task_id)
      )`,
      sql.unsafe`CREATE INDEX IF NOT EXISTS tasks_open_by_user ON tasks (user_id) WHERE status = 'open'`,
    ],
  },
  {
    version: 2,
    name: "population models, calibration scores, training windows, activation log",
    statements: [
      sql.unsafe`ALTER TABLE ml_models
        ADD COLUMN IF NOT EXISTS ece DECIMAL(6,5),
        ADD COLUMN IF NOT EXISTS brier DECIMAL(6,5),
        ADD COLUMN IF NOT EXISTS training_since_seq BIGINT NOT NULL DEFAULT 0`,
      sql.unsafe`CREATE TABLE IF NOT EXISTS model_activations (
        activation_id BIGSERIAL PRIMARY KEY,
        model_id UUID NOT NULL REFERENCES ml_models(model_id),
        user_id VARCHAR(255) NOT NULL,
        model_type VARCHAR(50) NOT NULL,
        version VARCHAR(20) NOT NULL,
        activated BOOLEAN NOT NULL,
        trigger VARCHAR(40) NOT NULL,
        reason TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
      )`,
      sql.unsafe`CREATE INDEX IF NOT EXISTS model_activations_by_user
        ON model_activations (user_id, model_type, activation_id DESC)`,
      sql.unsafe`CREATE INDEX IF NOT EXISTS model_predictions_feedback
        ON model_predictions (model_id, feedback_at DESC) WHERE was_correct IS NOT NULL`,
      sql.unsafe`CREATE INDEX IF NOT EXISTS training_data_type_seq ON training_data (model_type, seq)`,
    ],
  },
  {
    version: 3,
    name: "drop an index no query uses from the hottest insert",
    statements: [
      // Every Predict inserts a row; no query looks predictions up by model_id alone (drift reads them by user).
      sql.unsafe`DROP INDEX IF EXISTS model_predictions_model`,
    ],
  },
  {
    version: 4,
    name: "task picks (every open task of the choice, shown or not) and the learned rankers' weights",
    statements: [
      // One row per answered suggestion: the open tasks at the time, which one was picked, and where (if at all) it was shown.
      sql.unsafe`CREATE TABLE IF NOT EXISTS task_choices (
        choice_id BIGSERIAL PRIMARY KEY,
        user_id VARCHAR(255) NOT NULL,
        suggestion_id UUID NOT NULL UNIQUE,
        chosen_task_id UUID NOT NULL,
        shown BOOLEAN NOT NULL,
        shown_rank INT CHECK (shown_rank >= 1),
        propensity DOUBLE PRECISION CHECK (propensity > 0 AND propensity <= 1),
        context JSONB NOT NULL,
        open_tasks JSONB NOT NULL,
        chosen_index INT NOT NULL CHECK (chosen_index >= 0),
        created_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
      )`,
      sql.unsafe`CREATE INDEX IF NOT EXISTS task_choices_by_user ON task_choices (user_id, choice_id DESC)`,
      // A user's row holds their offset from the population's weights; user_id '' is the population.
      sql.unsafe`CREATE TABLE IF NOT EXISTS task_rankers (
        user_id VARCHAR(255) PRIMARY KEY,
        weights JSONB NOT NULL,
        picks INT NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
      )`,
    ],
  },
  {
    version: 5,
    name: "model_predictions partitioned by week (retention drops whole partitions); answered predictions kept apart",
    statements: [
      // At 1,000 calls/s the log grows by 86 M rows a day: old weeks must go as whole partitions, not by DELETE.
      // The primary key includes the partition key, as PostgreSQL requires; ids stay unique (random UUIDs, and
      // the writer stamps created_at once per row, so a retried batch conflicts with itself instead of repeating).
      sql.unsafe`ALTER TABLE model_predictions RENAME TO model_predictions_unpartitioned`,
      sql.unsafe`CREATE TABLE model_predictions (
        prediction_id UUID NOT NULL DEFAULT gen_random_uuid(),
        model_id UUID REFERENCES ml_models(model_id),
        user_id VARCHAR(255) NOT NULL,
        prediction_type VARCHAR(50) NOT NULL,
        prediction_value JSONB NOT NULL,
        confidence_score DECIMAL(5,4),
        was_correct BOOLEAN,
        feedback JSONB,
        feedback_at TIMESTAMPTZ,
        created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
        PRIMARY KEY (prediction_id, created_at)
      ) PARTITION BY RANGE (created_at)`,
      // Rows outside every weekly partition (the old table's, or a clock far off) land here until maintenance moves them.
      sql.unsafe`CREATE TABLE model_predictions_default PARTITION OF model_predictions DEFAULT`,
      sql.unsafe`INSERT INTO model_predictions
        SELECT prediction_id, model_id, user_id, prediction_type, prediction_value, confidence_score, was_correct, feedback,
          feedback_at, coalesce(created_at, NOW())
        FROM model_predictions_unpartitioned`,
      sql.unsafe`DROP TABLE model_predictions_unpartitioned`,
      // This week's partition and the next two exist before the first Predict after the migration, so live rows
      // do not land in the default partition (maintenance keeps creating them ahead; see src/db/retention.ts).
      // Existing rows of those weeks move out of the default partition first (it may not hold rows of a partition).
      sql.unsafe`DO $$
        DECLARE week_start timestamptz; name text;
        BEGIN
          FOR w IN 0..2 LOOP
            week_start := date_trunc('week', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' + make_interval(weeks => w);
            name := 'model_predictions_w' || to_char(week_start AT TIME ZONE 'UTC', 'YYYYMMDD');
            CREATE TEMP TABLE moving ON COMMIT DROP AS SELECT * FROM model_predictions_default
              WHERE created_at >= week_start AND created_at < week_start + interval '1 week';
            DELETE FROM model_predictions_default WHERE created_at >= week_start AND created_at < week_start + interval '1 week';
            EXECUTE format('CREATE TABLE %I PARTITION OF model_predictions FOR VALUES FROM (%L) TO (%L)',
              name, week_start, week_start + interval '1 week');
            INSERT INTO model_predictions SELECT * FROM moving;
            DROP TABLE moving;
          END LOOP;
        END $$`,
      // Lookups by prediction_id alone (Feedback) use the primary key, whose leading column it is: no index of its own
      // (one fewer index for every Predict's insert to maintain).
      sql.unsafe`CREATE INDEX model_predictions_user_created ON model_predictions (user_id, created_at)`,
      sql.unsafe`CREATE INDEX model_predictions_feedback ON model_predictions (model_id, feedback_at DESC) WHERE was_correct IS NOT NULL`,
      // Answered predictions outlive their partition: they are training data and the record of live accuracy.
      sql.unsafe`CREATE TABLE IF NOT EXISTS model_predictions_answered (LIKE model_predictions INCLUDING DEFAULTS, PRIMARY KEY (prediction_id, created_at))`,
    ],
  },
];
