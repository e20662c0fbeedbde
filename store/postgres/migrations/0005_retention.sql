-- 0005: what the cleaner reads, so its passes stay cheap on large tables.

-- Results to expire.
CREATE INDEX hammerwork_jobs_result_expiry_idx
    ON hammerwork_jobs (result_expires_at)
    WHERE result_data IS NOT NULL AND result_expires_at IS NOT NULL;

-- Finished jobs by status and age. The age is the finish time the store
-- knows: completed_at, failed_at, else (cancelled, skipped) scheduled_at.
CREATE INDEX hammerwork_jobs_finished_idx
    ON hammerwork_jobs (status, (COALESCE(completed_at, failed_at, scheduled_at)))
    WHERE status IN ('completed', 'failed', 'cancelled', 'skipped');
