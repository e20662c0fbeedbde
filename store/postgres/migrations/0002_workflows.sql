-- 0002: what workflow resolution needs beyond 0001.

-- Why a workflow failed or was cancelled (its timeout, say).
ALTER TABLE hammerwork_workflows ADD COLUMN error_message TEXT;

-- The workflow timeout check reads only live workflows with a deadline.
CREATE INDEX hammerwork_workflows_deadline_idx
    ON hammerwork_workflows (deadline)
    WHERE status IN ('running', 'paused') AND deadline IS NOT NULL;

-- Counting a workflow's jobs per status (GetWorkflow, RetryWorkflow) and
-- cancelling its unfinished ones read only this index.
CREATE INDEX hammerwork_jobs_workflow_status_idx
    ON hammerwork_jobs (workflow_id, status) WHERE workflow_id IS NOT NULL;
