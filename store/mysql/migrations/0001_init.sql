-- 0001: jobs, their dependency edges, and workflows, mirroring
-- store/postgres/migrations/0001_init.sql column for column.
--
-- Written for MySQL 8.0 and MariaDB 10.6+ alike. Where the two differ:
--   - JSON: on MySQL a binary type that re-encodes documents, on MariaDB an
--     alias of LONGTEXT with a JSON_VALID check. payload and result_data are
--     LONGTEXT with an explicit JSON_VALID check on both, so the app gets its
--     payload byte for byte as enqueued (as with JSON, not JSONB, on
--     PostgreSQL). errors, depends_on, retry_policy and metadata are JSON:
--     SQL appends to errors with JSON_ARRAY_APPEND.
--   - Defaults on TEXT and JSON columns need an expression default on MySQL
--     (8.0.13+) but a literal one is enough on MariaDB, so these columns have
--     none and every INSERT names them.
--   - CREATE INDEX IF NOT EXISTS exists on MariaDB only, so every index is
--     declared inside its CREATE TABLE IF NOT EXISTS, which both accept. MySQL
--     DDL is not transactional: each statement here is safe to run again, so
--     a migration interrupted half way is resumed by running it again.
--   - DESC index columns are real on MySQL 8 and MariaDB 10.8+; MariaDB 10.6
--     and 10.7 parse and ignore them (the lease then sorts its candidates).
--
-- MySQL has no partial indexes. Instead the lease indexes start with the
-- equality columns of the lease predicate (status, queue_name) followed by the
-- ORDER BY columns, so a lease walks the index in lease order and stops after
-- LIMIT rows. dependency_status comes last so it is checked from the index
-- (index condition pushdown) without reading the row.
--
-- Ids are CHAR(36) text UUIDs under a binary collation: lowercase hex text
-- compares in the same order as the UUID bytes, which is the order the store
-- contract uses for ids (UUIDv7, so creation order).

CREATE TABLE IF NOT EXISTS hammerwork_jobs (
    id                   CHAR(36) NOT NULL,
    queue_name           VARCHAR(128) NOT NULL,
    payload              LONGTEXT NOT NULL,
    status               VARCHAR(16) NOT NULL DEFAULT 'pending',
    priority             TINYINT NOT NULL DEFAULT 2,
    attempts             INT NOT NULL DEFAULT 0,
    max_attempts         INT NOT NULL DEFAULT 3,
    created_at           DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    scheduled_at         DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    started_at           DATETIME(6) NULL,
    completed_at         DATETIME(6) NULL,
    failed_at            DATETIME(6) NULL,
    error_message        MEDIUMTEXT NULL,
    errors               JSON NOT NULL,
    timeout_seconds      DOUBLE NULL,
    retry_policy         JSON NULL,
    result_data          LONGTEXT NULL,
    result_expires_at    DATETIME(6) NULL,
    result_ttl_seconds   DOUBLE NULL,
    batch_id             CHAR(36) NULL,
    workflow_id          CHAR(36) NULL,
    workflow_name        VARCHAR(255) NULL,
    step_name            VARCHAR(255) NULL,
    depends_on           JSON NOT NULL,
    dependency_status    VARCHAR(16) NOT NULL DEFAULT 'none',
    pending_dependencies INT NOT NULL DEFAULT 0,
    `condition`          TEXT NULL,
    trace_id             VARCHAR(255) NULL,
    correlation_id       VARCHAR(255) NULL,
    parent_span_id       VARCHAR(255) NULL,
    span_context         TEXT NULL,
    unique_key           VARCHAR(255) NULL,
    leased_by            VARCHAR(255) NULL,
    lease_expires_at     DATETIME(6) NULL,
    lease_token          VARCHAR(64) NULL,
    PRIMARY KEY (id),
    CONSTRAINT hammerwork_jobs_payload_json CHECK (JSON_VALID(payload)),
    CONSTRAINT hammerwork_jobs_result_json CHECK (result_data IS NULL OR JSON_VALID(result_data)),
    CONSTRAINT hammerwork_jobs_status_check
        CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled', 'skipped')),
    CONSTRAINT hammerwork_jobs_priority_check CHECK (priority BETWEEN 0 AND 4),
    CONSTRAINT hammerwork_jobs_dependency_status_check
        CHECK (dependency_status IN ('none', 'waiting', 'satisfied', 'failed')),
    -- Leasing one named queue (and the seed query of DESIGN.md).
    INDEX hammerwork_jobs_lease_queue_idx
        (status, queue_name, priority DESC, scheduled_at, id, dependency_status),
    -- Leasing every queue ("*"), or every queue but some.
    INDEX hammerwork_jobs_lease_all_idx
        (status, priority DESC, scheduled_at, id, dependency_status),
    -- The expired-lease rescuer.
    INDEX hammerwork_jobs_running_lease_idx (status, lease_expires_at),
    INDEX hammerwork_jobs_workflow_idx (workflow_id),
    INDEX hammerwork_jobs_batch_idx (batch_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Edges, so resolving a finished job touches only its children.
CREATE TABLE IF NOT EXISTS hammerwork_job_dependencies (
    job_id        CHAR(36) NOT NULL,
    depends_on_id CHAR(36) NOT NULL,
    PRIMARY KEY (job_id, depends_on_id),
    INDEX hammerwork_job_dependencies_depends_on_idx (depends_on_id),
    CONSTRAINT hammerwork_job_dependencies_job_fk
        FOREIGN KEY (job_id) REFERENCES hammerwork_jobs (id) ON DELETE CASCADE,
    CONSTRAINT hammerwork_job_dependencies_depends_on_fk
        FOREIGN KEY (depends_on_id) REFERENCES hammerwork_jobs (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE IF NOT EXISTS hammerwork_workflows (
    id              CHAR(36) NOT NULL,
    name            VARCHAR(255) NOT NULL,
    description     TEXT NULL,
    status          VARCHAR(16) NOT NULL DEFAULT 'running',
    failure_policy  VARCHAR(32) NOT NULL DEFAULT 'fail_fast',
    priority        TINYINT NOT NULL DEFAULT 2,
    timeout_seconds DOUBLE NULL,
    deadline        DATETIME(6) NULL,
    trace_id        VARCHAR(255) NULL,
    correlation_id  VARCHAR(255) NULL,
    metadata        JSON NULL,
    total_jobs      INT NOT NULL DEFAULT 0,
    completed_jobs  INT NOT NULL DEFAULT 0,
    failed_jobs     INT NOT NULL DEFAULT 0,
    cancelled_jobs  INT NOT NULL DEFAULT 0,
    skipped_jobs    INT NOT NULL DEFAULT 0,
    created_at      DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    completed_at    DATETIME(6) NULL,
    failed_at       DATETIME(6) NULL,
    PRIMARY KEY (id),
    CONSTRAINT hammerwork_workflows_status_check
        CHECK (status IN ('running', 'completed', 'failed', 'cancelled', 'paused')),
    CONSTRAINT hammerwork_workflows_failure_policy_check
        CHECK (failure_policy IN ('fail_fast', 'continue_on_failure', 'manual')),
    CONSTRAINT hammerwork_workflows_priority_check CHECK (priority BETWEEN 0 AND 4),
    INDEX hammerwork_workflows_status_idx (status, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
