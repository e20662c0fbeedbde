-- 0002: what workflow resolution needs beyond 0001, mirroring
-- store/postgres/migrations/0002_workflows.sql.
--
-- ADD COLUMN IF NOT EXISTS and CREATE INDEX IF NOT EXISTS exist on MariaDB
-- only, so these are the plain forms both servers accept. MySQL commits each
-- DDL statement at once, so a migrator that died half way leaves some of them
-- applied: Migrate treats "duplicate column" (1060) and "duplicate key name"
-- (1061) on a re-run as already done, which keeps this file re-runnable.

-- Why a workflow failed or was cancelled (its timeout, say).
ALTER TABLE hammerwork_workflows ADD COLUMN error_message TEXT NULL;

-- The workflow timeout check reads only live workflows with a deadline (no
-- partial index on MySQL: status leads instead).
CREATE INDEX hammerwork_workflows_deadline_idx ON hammerwork_workflows (status, deadline);

-- Counting a workflow's jobs per status (GetWorkflow, RetryWorkflow) and
-- cancelling its unfinished ones read only this index.
CREATE INDEX hammerwork_jobs_workflow_status_idx ON hammerwork_jobs (workflow_id, status);
