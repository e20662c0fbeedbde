-- 0004: unique keys and batches.

-- While a job with a unique key is pending or running, no other job may take
-- the key: enqueue inserts with ON CONFLICT DO NOTHING against this index and
-- returns the live job instead. A finished job frees its key.
CREATE UNIQUE INDEX hammerwork_jobs_unique_live_idx
    ON hammerwork_jobs (unique_key)
    WHERE unique_key IS NOT NULL AND status IN ('pending', 'running');

-- A batch of jobs enqueued together; its counters and status are kept in
-- the transactions of its jobs' transitions.
CREATE TABLE hammerwork_batches (
    id             UUID        NOT NULL PRIMARY KEY,
    name           TEXT,
    failure_mode   TEXT        NOT NULL DEFAULT 'continue_on_error'
        CONSTRAINT hammerwork_batches_failure_mode_check
        CHECK (failure_mode IN ('continue_on_error', 'fail_fast', 'collect_errors')),
    status         TEXT        NOT NULL DEFAULT 'pending'
        CONSTRAINT hammerwork_batches_status_check
        CHECK (status IN ('pending', 'processing', 'completed', 'partially_failed', 'failed')),
    total_jobs     INT         NOT NULL DEFAULT 0,
    pending_jobs   INT         NOT NULL DEFAULT 0,
    completed_jobs INT         NOT NULL DEFAULT 0,
    failed_jobs    INT         NOT NULL DEFAULT 0,
    cancelled_jobs INT         NOT NULL DEFAULT 0,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    completed_at   TIMESTAMPTZ
);

-- fail_fast cancels a batch's pending jobs; GetBatch looks for started and
-- failed ones: both read only this index.
CREATE INDEX hammerwork_jobs_batch_status_idx
    ON hammerwork_jobs (batch_id, status) WHERE batch_id IS NOT NULL;
