-- 0003: queue pauses, and the index of queue reports,
-- mirroring store/postgres/migrations/0003_queue_controls.sql (no partial
-- indexes on MySQL: status leads instead). Each statement is re-runnable as
-- 0002's are.

-- One row per paused queue. Every lease query anti-joins this table, so a
-- pause holds for every agent from its next lease on; a queue with no jobs
-- can be paused too.
CREATE TABLE IF NOT EXISTS hammerwork_queue_pauses (
    queue_name VARCHAR(128) NOT NULL PRIMARY KEY,
    paused_at  DATETIME(6) NOT NULL,
    paused_by  TEXT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- NextDue needs no index of its own: it seeks the lease indexes once per
-- priority level. An index on (queue_name, scheduled_at) would tempt the
-- planner to serve the lease's scheduled_at bound from it and sort the whole
-- backlog on every lease.

-- Queue reports: completions in the last minute. status leads, like the
-- lease indexes, but is followed by completed_at, so a lease (status and
-- queue_name equalities) never prefers it to the lease indexes.
CREATE INDEX hammerwork_jobs_completed_idx ON hammerwork_jobs (status, completed_at, queue_name);
