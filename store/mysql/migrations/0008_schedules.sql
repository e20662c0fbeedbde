-- 0008: cron schedules and their runs, mirroring
-- store/postgres/migrations/0008_schedules.sql. Re-runnable: both tables and
-- their indexes are created with IF NOT EXISTS.
--
-- The due scan (paused = FALSE AND next_run_at <= now ORDER BY next_run_at)
-- has no partial index on MySQL: paused leads instead, so the scan walks the
-- unpaused rows in next_run_at order and stops after LIMIT. A NULL
-- next_run_at (no slot left) never matches.
CREATE TABLE IF NOT EXISTS hammerwork_schedules (
    name                VARCHAR(128) NOT NULL,
    cron                TEXT NOT NULL,
    timezone            VARCHAR(64) NOT NULL,
    target              LONGTEXT NOT NULL,
    overlap             VARCHAR(16) NOT NULL,
    catchup             VARCHAR(16) NOT NULL,
    catchup_window_ms   BIGINT NOT NULL,
    jitter_ms           BIGINT NOT NULL,
    start_at            DATETIME(6) NULL,
    end_at              DATETIME(6) NULL,
    depends_on_schedule VARCHAR(128) NULL,
    paused              BOOLEAN NOT NULL DEFAULT FALSE,
    paused_reason       TEXT NULL,
    paused_at           DATETIME(6) NULL,
    next_run_at         DATETIME(6) NULL,
    cursor_at           DATETIME(6) NOT NULL,
    buffered_at         DATETIME(6) NULL,
    last_run_at         DATETIME(6) NULL,
    last_job_id         CHAR(36) NULL,
    last_workflow_id    CHAR(36) NULL,
    created_at          DATETIME(6) NOT NULL,
    updated_at          DATETIME(6) NOT NULL,
    PRIMARY KEY (name),
    CONSTRAINT hammerwork_schedules_target_json CHECK (JSON_VALID(target)),
    INDEX hammerwork_schedules_due_idx (paused, next_run_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- One row per slot handled and per triggered run. The primary key is the
-- exactly-once guard: a slot two agents planned is written by one of them.
-- It also serves a schedule's runs newest first and the trim to the newest
-- ScheduleRunsKept.
CREATE TABLE IF NOT EXISTS hammerwork_schedule_runs (
    schedule_name VARCHAR(128) NOT NULL,
    nominal_time  DATETIME(6) NOT NULL,
    fired_at      DATETIME(6) NOT NULL,
    outcome       VARCHAR(16) NOT NULL,
    triggered     BOOLEAN NOT NULL,
    job_id        CHAR(36) NULL,
    workflow_id   CHAR(36) NULL,
    note          TEXT NULL,
    PRIMARY KEY (schedule_name, nominal_time),
    CONSTRAINT hammerwork_schedule_runs_outcome_check CHECK (outcome IN ('fired', 'skipped'))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
