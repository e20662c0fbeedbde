-- 0003: queue pauses, and the index of queue reports.

-- One row per paused queue. Every lease query anti-joins this table, so a
-- pause holds for every process sharing the file from its next lease on; a
-- queue with no jobs can be paused too.
CREATE TABLE hammerwork_queue_pauses (
    queue_name TEXT NOT NULL PRIMARY KEY,
    paused_at  TEXT NOT NULL,
    paused_by  TEXT
);

-- NextDue needs no index of its own: it seeks the lease indexes once per
-- priority level. An index on (queue_name, scheduled_at) would tempt the
-- planner to serve the lease's scheduled_at bound from it and sort the whole
-- backlog on every lease.

-- Completions in the last minute, per queue.
CREATE INDEX hammerwork_jobs_completed_idx
    ON hammerwork_jobs (queue_name, completed_at) WHERE status = 'completed';
