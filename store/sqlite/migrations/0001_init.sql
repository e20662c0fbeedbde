-- Initial schema of the SQLite backend. It mirrors the PostgreSQL schema
-- table for table and column for column, in SQLite's types:
--   * ids are canonical UUID strings, so ORDER BY id is UUIDv7 creation order;
--   * JSON columns are TEXT holding JSON;
--   * timestamps are TEXT in UTC, formatted 'YYYY-MM-DD HH:MM:SS.ffffff'
--     (fixed width), so string comparison is time order and
--     `scheduled_at <= CURRENT_TIMESTAMP` means what it says.

CREATE TABLE hammerwork_jobs (
    id                   TEXT    NOT NULL PRIMARY KEY,
    queue_name           TEXT    NOT NULL,
    payload              TEXT    NOT NULL DEFAULT 'null',
    status               TEXT    NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled', 'skipped')),
    priority             INTEGER NOT NULL DEFAULT 2 CHECK (priority BETWEEN 0 AND 4),
    attempts             INTEGER NOT NULL DEFAULT 0,
    max_attempts         INTEGER NOT NULL DEFAULT 3,
    created_at           TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now') || '000'),
    scheduled_at         TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now') || '000'),
    started_at           TEXT,
    completed_at         TEXT,
    failed_at            TEXT,
    error_message        TEXT,
    -- Every attempt's error: [{"attempt", "at", "outcome", "message"}, ...].
    errors               TEXT    NOT NULL DEFAULT '[]',
    timeout_seconds      REAL,
    retry_policy         TEXT,
    result_data          TEXT,
    result_expires_at    TEXT,
    result_ttl_seconds   REAL,
    batch_id             TEXT,
    workflow_id          TEXT,
    workflow_name        TEXT,
    step_name            TEXT,
    -- Parent ids as a JSON array; the edges that resolution walks live in
    -- hammerwork_job_dependencies.
    depends_on           TEXT    NOT NULL DEFAULT '[]',
    dependency_status    TEXT    NOT NULL DEFAULT 'none'
        CHECK (dependency_status IN ('none', 'waiting', 'satisfied', 'failed')),
    pending_dependencies INTEGER NOT NULL DEFAULT 0,
    condition            TEXT,
    trace_id             TEXT,
    correlation_id       TEXT,
    parent_span_id       TEXT,
    span_context         TEXT,
    unique_key           TEXT,
    leased_by            TEXT,
    lease_expires_at     TEXT,
    lease_token          TEXT
);

-- Matches the lease ORDER BY over every queue, holding only leasable rows.
CREATE INDEX hammerwork_jobs_leasable_idx
    ON hammerwork_jobs (priority DESC, scheduled_at, id)
    WHERE status = 'pending' AND dependency_status IN ('none', 'satisfied');

-- The same order within one queue: the per-queue lease and the seed query.
CREATE INDEX hammerwork_jobs_queue_leasable_idx
    ON hammerwork_jobs (queue_name, priority DESC, scheduled_at, id)
    WHERE status = 'pending' AND dependency_status IN ('none', 'satisfied');

-- The rescuer looks for running jobs whose lease has run out.
CREATE INDEX hammerwork_jobs_running_lease_idx
    ON hammerwork_jobs (lease_expires_at)
    WHERE status = 'running';

CREATE INDEX hammerwork_jobs_queue_status_idx ON hammerwork_jobs (queue_name, status);
CREATE INDEX hammerwork_jobs_workflow_idx ON hammerwork_jobs (workflow_id) WHERE workflow_id IS NOT NULL;
CREATE INDEX hammerwork_jobs_batch_idx ON hammerwork_jobs (batch_id) WHERE batch_id IS NOT NULL;

-- One row per edge: job_id waits for depends_on_id. Indexed on depends_on_id
-- so finishing a job touches only its children.
CREATE TABLE hammerwork_job_dependencies (
    job_id        TEXT NOT NULL REFERENCES hammerwork_jobs (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    depends_on_id TEXT NOT NULL REFERENCES hammerwork_jobs (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    PRIMARY KEY (job_id, depends_on_id)
) WITHOUT ROWID;

CREATE INDEX hammerwork_job_dependencies_depends_on_idx
    ON hammerwork_job_dependencies (depends_on_id, job_id);

CREATE TABLE hammerwork_workflows (
    id             TEXT    NOT NULL PRIMARY KEY,
    name           TEXT    NOT NULL,
    description    TEXT,
    status         TEXT    NOT NULL DEFAULT 'running'
        CHECK (status IN ('running', 'completed', 'failed', 'cancelled', 'paused')),
    failure_policy TEXT    NOT NULL DEFAULT 'fail_fast'
        CHECK (failure_policy IN ('fail_fast', 'continue_on_failure', 'manual')),
    priority       INTEGER NOT NULL DEFAULT 2 CHECK (priority BETWEEN 0 AND 4),
    timeout_seconds REAL,
    deadline       TEXT,
    trace_id       TEXT,
    correlation_id TEXT,
    metadata       TEXT,
    total_jobs     INTEGER NOT NULL DEFAULT 0,
    completed_jobs INTEGER NOT NULL DEFAULT 0,
    failed_jobs    INTEGER NOT NULL DEFAULT 0,
    cancelled_jobs INTEGER NOT NULL DEFAULT 0,
    skipped_jobs   INTEGER NOT NULL DEFAULT 0,
    created_at     TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now') || '000'),
    completed_at   TEXT,
    failed_at      TEXT
);

CREATE INDEX hammerwork_workflows_status_idx ON hammerwork_workflows (status, id);
