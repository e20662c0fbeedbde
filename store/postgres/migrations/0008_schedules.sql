-- 0008: cron schedules and their runs.
--
-- Names compare byte by byte (COLLATE "C"), so listing pages and pruning
-- order names as every backend does, whatever the database's locale.
-- target is the JSON document of store.ScheduleTarget kept as text, byte for
-- byte as written. Durations are whole milliseconds.

CREATE TABLE hammerwork_schedules (
    name                VARCHAR(128) COLLATE "C" PRIMARY KEY,
    cron                TEXT NOT NULL,
    timezone            VARCHAR(64) NOT NULL,
    target              TEXT NOT NULL,
    overlap             VARCHAR(16) NOT NULL,
    catchup             VARCHAR(16) NOT NULL,
    catchup_window_ms   BIGINT NOT NULL,
    jitter_ms           BIGINT NOT NULL,
    start_at            TIMESTAMPTZ,
    end_at              TIMESTAMPTZ,
    depends_on_schedule VARCHAR(128) COLLATE "C",
    paused              BOOLEAN NOT NULL DEFAULT false,
    paused_reason       TEXT,
    paused_at           TIMESTAMPTZ,
    -- NULL once no slot is left (past end_at).
    next_run_at         TIMESTAMPTZ,
    cursor_at           TIMESTAMPTZ NOT NULL,
    buffered_at         TIMESTAMPTZ,
    last_run_at         TIMESTAMPTZ,
    last_job_id         UUID,
    last_workflow_id    UUID,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL
);

-- The scheduler pass: due schedules, oldest next_run_at first, paused ones
-- never read.
CREATE INDEX hammerwork_schedules_due_idx
    ON hammerwork_schedules (next_run_at)
    WHERE NOT paused;

-- One row per slot handled: the primary key is the exactly-once guard of a
-- slot across agents, and serves the newest-first paging of a schedule's
-- runs and the trimming to the newest store.ScheduleRunsKept.
CREATE TABLE hammerwork_schedule_runs (
    schedule_name VARCHAR(128) COLLATE "C" NOT NULL,
    nominal_time  TIMESTAMPTZ NOT NULL,
    fired_at      TIMESTAMPTZ NOT NULL,
    outcome       VARCHAR(16) NOT NULL
        CONSTRAINT hammerwork_schedule_runs_outcome_check CHECK (outcome IN ('fired', 'skipped')),
    triggered     BOOLEAN NOT NULL,
    job_id        UUID,
    workflow_id   UUID,
    note          TEXT,
    PRIMARY KEY (schedule_name, nominal_time)
);
