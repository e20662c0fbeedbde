-- 0004: unique keys and batches, mirroring
-- store/postgres/migrations/0004_unique_batches.sql.

-- While a job with a unique key is pending or running, no other job may take
-- the key. MySQL and MariaDB have no partial indexes, so a generated column
-- holds the key only while the job is live, and a UNIQUE index over it
-- enforces the rule (NULLs never collide). A finished job frees its key.
ALTER TABLE hammerwork_jobs ADD COLUMN unique_live_key VARCHAR(255)
    AS (IF(status IN ('pending', 'running'), unique_key, NULL)) STORED;

CREATE UNIQUE INDEX hammerwork_jobs_unique_live_idx ON hammerwork_jobs (unique_live_key);

-- A batch of jobs enqueued together, its counters and status kept in the
-- transactions of its jobs' transitions.
CREATE TABLE IF NOT EXISTS hammerwork_batches (
    id             CHAR(36)     NOT NULL,
    name           VARCHAR(255) NULL,
    failure_mode   VARCHAR(32)  NOT NULL DEFAULT 'continue_on_error',
    status         VARCHAR(32)  NOT NULL DEFAULT 'pending',
    total_jobs     INT          NOT NULL DEFAULT 0,
    pending_jobs   INT          NOT NULL DEFAULT 0,
    completed_jobs INT          NOT NULL DEFAULT 0,
    failed_jobs    INT          NOT NULL DEFAULT 0,
    cancelled_jobs INT          NOT NULL DEFAULT 0,
    created_at     DATETIME(6)  NOT NULL,
    completed_at   DATETIME(6)  NULL,
    PRIMARY KEY (id),
    CONSTRAINT hammerwork_batches_failure_mode_check
        CHECK (failure_mode IN ('continue_on_error', 'fail_fast', 'collect_errors')),
    CONSTRAINT hammerwork_batches_status_check
        CHECK (status IN ('pending', 'processing', 'completed', 'partially_failed', 'failed'))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- fail_fast cancels a batch's pending jobs, GetBatch looks for started and
-- failed ones: both read only this index.
CREATE INDEX hammerwork_jobs_batch_status_idx ON hammerwork_jobs (batch_id, status);
