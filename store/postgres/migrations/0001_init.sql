-- 0001: jobs, their dependency edges, and workflows.
--
-- payload and result_data are JSON, not JSONB: the app receives its payload
-- byte for byte as enqueued and nothing queries inside either column, so
-- JSONB's parse-and-reencode would only cost time and change the bytes.
-- errors and depends_on are JSONB because SQL appends to them.

CREATE TABLE hammerwork_jobs (
    id                   UUID PRIMARY KEY,
    queue_name           TEXT NOT NULL,
    payload              JSON NOT NULL DEFAULT 'null',
    status               TEXT NOT NULL DEFAULT 'pending'
        CONSTRAINT hammerwork_jobs_status_check
        CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled', 'skipped')),
    priority             SMALLINT NOT NULL DEFAULT 2
        CONSTRAINT hammerwork_jobs_priority_check CHECK (priority BETWEEN 0 AND 4),
    attempts             INT NOT NULL DEFAULT 0,
    max_attempts         INT NOT NULL DEFAULT 3,
    created_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    scheduled_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at           TIMESTAMPTZ,
    completed_at         TIMESTAMPTZ,
    failed_at            TIMESTAMPTZ,
    error_message        TEXT,
    errors               JSONB NOT NULL DEFAULT '[]',
    timeout_seconds      DOUBLE PRECISION,
    retry_policy         JSONB,
    result_data          JSON,
    result_expires_at    TIMESTAMPTZ,
    result_ttl_seconds   DOUBLE PRECISION,
    batch_id             UUID,
    workflow_id          UUID,
    workflow_name        TEXT,
    step_name            TEXT,
    depends_on           JSONB NOT NULL DEFAULT '[]',
    dependency_status    TEXT NOT NULL DEFAULT 'none'
        CONSTRAINT hammerwork_jobs_dependency_status_check
        CHECK (dependency_status IN ('none', 'waiting', 'satisfied', 'failed')),
    pending_dependencies INT NOT NULL DEFAULT 0,
    condition            TEXT,
    trace_id             TEXT,
    correlation_id       TEXT,
    parent_span_id       TEXT,
    span_context         TEXT,
    unique_key           TEXT,
    leased_by            TEXT,
    lease_expires_at     TIMESTAMPTZ,
    lease_token          TEXT
);

-- Leasing one or several named queues: the index order is the lease order,
-- so the planner reads the first n entries and stops.
CREATE INDEX hammerwork_jobs_lease_queue_idx
    ON hammerwork_jobs (queue_name, priority DESC, scheduled_at, id)
    WHERE status = 'pending' AND dependency_status IN ('none', 'satisfied');

-- Leasing every queue ("*").
CREATE INDEX hammerwork_jobs_lease_all_idx
    ON hammerwork_jobs (priority DESC, scheduled_at, id)
    WHERE status = 'pending' AND dependency_status IN ('none', 'satisfied');

-- The expired-lease rescuer.
CREATE INDEX hammerwork_jobs_running_lease_idx
    ON hammerwork_jobs (lease_expires_at)
    WHERE status = 'running';

CREATE INDEX hammerwork_jobs_workflow_idx ON hammerwork_jobs (workflow_id) WHERE workflow_id IS NOT NULL;
CREATE INDEX hammerwork_jobs_batch_idx ON hammerwork_jobs (batch_id) WHERE batch_id IS NOT NULL;

-- Edges, so resolving a finished job touches only its children.
CREATE TABLE hammerwork_job_dependencies (
    job_id        UUID NOT NULL REFERENCES hammerwork_jobs (id) ON DELETE CASCADE,
    depends_on_id UUID NOT NULL REFERENCES hammerwork_jobs (id) ON DELETE CASCADE,
    PRIMARY KEY (job_id, depends_on_id)
);

CREATE INDEX hammerwork_job_dependencies_depends_on_idx ON hammerwork_job_dependencies (depends_on_id);

CREATE TABLE hammerwork_workflows (
    id              UUID PRIMARY KEY,
    name            TEXT NOT NULL,
    description     TEXT,
    status          TEXT NOT NULL DEFAULT 'running'
        CONSTRAINT hammerwork_workflows_status_check
        CHECK (status IN ('running', 'completed', 'failed', 'cancelled', 'paused')),
    failure_policy  TEXT NOT NULL DEFAULT 'fail_fast'
        CONSTRAINT hammerwork_workflows_failure_policy_check
        CHECK (failure_policy IN ('fail_fast', 'continue_on_failure', 'manual')),
    priority        SMALLINT NOT NULL DEFAULT 2
        CONSTRAINT hammerwork_workflows_priority_check CHECK (priority BETWEEN 0 AND 4),
    timeout_seconds DOUBLE PRECISION,
    deadline        TIMESTAMPTZ,
    trace_id        TEXT,
    correlation_id  TEXT,
    metadata        JSONB,
    total_jobs      INT NOT NULL DEFAULT 0,
    completed_jobs  INT NOT NULL DEFAULT 0,
    failed_jobs     INT NOT NULL DEFAULT 0,
    cancelled_jobs  INT NOT NULL DEFAULT 0,
    skipped_jobs    INT NOT NULL DEFAULT 0,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    completed_at    TIMESTAMPTZ,
    failed_at       TIMESTAMPTZ
);

CREATE INDEX hammerwork_workflows_status_idx ON hammerwork_workflows (status, id);
