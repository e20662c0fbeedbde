-- 0008: cron schedules and their runs. Types follow 0001: names and JSON
-- are TEXT, ids canonical UUID strings, booleans 0/1 INTEGERs, times UTC
-- TEXT in the fixed-width format (string order is time order).

-- One row per schedule: its definition (target is ScheduleTarget's JSON)
-- and the scheduler's state. next_run_at is NULL once no slot is left.
CREATE TABLE hammerwork_schedules (
    name                TEXT    NOT NULL PRIMARY KEY,
    cron                TEXT    NOT NULL,
    timezone            TEXT    NOT NULL DEFAULT 'UTC',
    target              TEXT    NOT NULL,
    overlap             TEXT    NOT NULL,
    catchup             TEXT    NOT NULL,
    catchup_window_ms   INTEGER NOT NULL,
    jitter_ms           INTEGER NOT NULL,
    start_at            TEXT,
    end_at              TEXT,
    depends_on_schedule TEXT,
    paused              INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1)),
    paused_reason       TEXT,
    paused_at           TEXT,
    next_run_at         TEXT,
    cursor_at           TEXT    NOT NULL,
    buffered_at         TEXT,
    last_run_at         TEXT,
    last_job_id         TEXT,
    last_workflow_id    TEXT,
    created_at          TEXT    NOT NULL,
    updated_at          TEXT    NOT NULL
);

-- The due scan of FireSchedules: unpaused schedules by next run.
CREATE INDEX hammerwork_schedules_due_idx
    ON hammerwork_schedules (next_run_at)
    WHERE paused = 0;

-- One row per slot handled or run triggered. The primary key is the
-- exactly-once guard: a slot's run is written once, whoever fires it. The
-- key also serves the runs listing (newest first) and the trimming to the
-- newest store.ScheduleRunsKept.
CREATE TABLE hammerwork_schedule_runs (
    schedule_name TEXT    NOT NULL,
    nominal_time  TEXT    NOT NULL,
    fired_at      TEXT    NOT NULL,
    outcome       TEXT    NOT NULL CHECK (outcome IN ('fired', 'skipped')),
    triggered     INTEGER NOT NULL CHECK (triggered IN (0, 1)),
    job_id        TEXT,
    workflow_id   TEXT,
    note          TEXT,
    PRIMARY KEY (schedule_name, nominal_time)
) WITHOUT ROWID;
