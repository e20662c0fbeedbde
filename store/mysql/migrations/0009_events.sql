-- The transactional outbox (see docs/ARCHITECTURE.md, "Events"): subscribers,
-- the events that triggers write in the transaction of each change, the
-- sequencer row that gives committed events their commit-order seq, and the
-- webhook delivery log.
--
-- Creating the triggers needs the TRIGGER privilege on the database; on a
-- MySQL server with binary logging on (the default since 8.0) the migrating
-- account also needs SUPER, or the server log_bin_trust_function_creators = 1.
--
-- Each trigger body is one INSERT ... SELECT statement (no BEGIN ... END:
-- the migration runner splits files at each ';' that ends a line). They
-- write only while an enabled subscriber exists. Every statement is
-- re-runnable, so an interrupted run can simply run again.

CREATE TABLE IF NOT EXISTS hammerwork_event_subscribers (
    id                   CHAR(36) NOT NULL,
    name                 VARCHAR(128) NOT NULL,
    kind                 VARCHAR(16) NOT NULL,
    source               VARCHAR(16) NOT NULL,
    config               LONGTEXT NULL,
    include_payload      BOOLEAN NOT NULL DEFAULT FALSE,
    include_result       BOOLEAN NOT NULL DEFAULT FALSE,
    enabled              BOOLEAN NOT NULL DEFAULT TRUE,
    disabled_reason      TEXT NULL,
    disabled_at          DATETIME(6) NULL,
    cursor_seq           BIGINT NOT NULL DEFAULT 0,
    consecutive_failures INT NOT NULL DEFAULT 0,
    retry_seq            BIGINT NOT NULL DEFAULT 0,
    retry_attempts       INT NOT NULL DEFAULT 0,
    retry_at             DATETIME(6) NULL,
    last_error           TEXT NULL,
    last_delivered_at    DATETIME(6) NULL,
    claimed_by           VARCHAR(255) NULL,
    claim_token          VARCHAR(64) NULL,
    claimed_until        DATETIME(6) NULL,
    created_at           DATETIME(6) NOT NULL,
    updated_at           DATETIME(6) NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY hammerwork_event_subscribers_name_key (name),
    CONSTRAINT hammerwork_event_subscribers_kind_check CHECK (kind IN ('webhook', 'stream', 'tail')),
    CONSTRAINT hammerwork_event_subscribers_source_check CHECK (source IN ('config', 'api'))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- What the triggers ask of the subscribers, kept by the store in the
-- transaction of every subscriber change. InnoDB reads the tables of a
-- trigger with shared row locks when the changing statement is an INSERT or
-- a DELETE (only INSERT ... SELECT and UPDATE read consistently at READ
-- COMMITTED): were the triggers to read hammerwork_event_subscribers, every
-- open enqueue would lock the subscriber rows that claims take with SKIP
-- LOCKED and acks update. This row is written rarely, and such a write waits
-- only for the transactions already open.
CREATE TABLE IF NOT EXISTS hammerwork_event_flags (
    id              INT NOT NULL,
    enabled         BOOLEAN NOT NULL DEFAULT FALSE,
    include_payload BOOLEAN NOT NULL DEFAULT FALSE,
    include_result  BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (id),
    CONSTRAINT hammerwork_event_flags_one_row CHECK (id = 1)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

INSERT INTO hammerwork_event_flags (id) VALUES (1) ON DUPLICATE KEY UPDATE id = id;

-- pos is insertion order, seq commit order (NULL until SequenceEvents). The
-- (seq, pos) index serves the sequencer's scan of seq IS NULL in pos order.
CREATE TABLE IF NOT EXISTS hammerwork_events (
    pos            BIGINT NOT NULL AUTO_INCREMENT,
    seq            BIGINT NULL,
    id             CHAR(36) NOT NULL,
    kind           VARCHAR(16) NOT NULL,
    from_status    VARCHAR(32) NULL,
    status         VARCHAR(32) NOT NULL,
    occurred_at    DATETIME(6) NOT NULL,
    job_id         CHAR(36) NULL,
    queue          VARCHAR(128) NULL,
    priority       INT NULL,
    attempt        INT NULL,
    prev_attempt   INT NULL,
    outcome        VARCHAR(64) NULL,
    error          MEDIUMTEXT NULL,
    started_at     DATETIME(6) NULL,
    finished_at    DATETIME(6) NULL,
    workflow_id    CHAR(36) NULL,
    workflow_name  VARCHAR(255) NULL,
    batch_id       CHAR(36) NULL,
    schedule_name  VARCHAR(128) NULL,
    missed         INT NULL,
    trace_id       VARCHAR(255) NULL,
    correlation_id VARCHAR(255) NULL,
    payload        LONGTEXT NULL,
    result         LONGTEXT NULL,
    PRIMARY KEY (pos),
    UNIQUE KEY hammerwork_events_seq_key (seq),
    INDEX hammerwork_events_unsequenced_idx (seq, pos),
    INDEX hammerwork_events_id_idx (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE IF NOT EXISTS hammerwork_event_sequence (
    id       INT NOT NULL,
    last_seq BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (id),
    CONSTRAINT hammerwork_event_sequence_one_row CHECK (id = 1)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

INSERT INTO hammerwork_event_sequence (id, last_seq) VALUES (1, 0) ON DUPLICATE KEY UPDATE id = id;

-- duration_us is the attempt's round trip in microseconds.
CREATE TABLE IF NOT EXISTS hammerwork_webhook_deliveries (
    id            CHAR(36) NOT NULL,
    subscriber_id CHAR(36) NOT NULL,
    event_id      CHAR(36) NOT NULL,
    event_seq     BIGINT NOT NULL,
    event_type    VARCHAR(64) NOT NULL,
    attempt       INT NOT NULL,
    outcome       VARCHAR(16) NOT NULL,
    status_code   INT NOT NULL,
    error         TEXT NULL,
    response      TEXT NULL,
    duration_us   BIGINT NOT NULL,
    agent_id      VARCHAR(255) NOT NULL,
    attempted_at  DATETIME(6) NOT NULL,
    PRIMARY KEY (id),
    INDEX hammerwork_webhook_deliveries_subscriber_idx (subscriber_id, id),
    INDEX hammerwork_webhook_deliveries_attempted_idx (attempted_at),
    CONSTRAINT hammerwork_webhook_deliveries_subscriber_fk
        FOREIGN KEY (subscriber_id) REFERENCES hammerwork_event_subscribers (id) ON DELETE CASCADE,
    CONSTRAINT hammerwork_webhook_deliveries_outcome_check CHECK (outcome IN ('delivered', 'retrying', 'failed'))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Slots a schedule's catch-up policy let pass, counted up by FireSchedules:
-- its growth is the schedule.missed event.
ALTER TABLE hammerwork_schedules ADD COLUMN missed_slots BIGINT NOT NULL DEFAULT 0;

-- A job's outcome is its last errors[] element's; JSON_LENGTH guards the
-- path, which an empty array would make $[-1].
DROP TRIGGER IF EXISTS hammerwork_jobs_insert_event;
CREATE TRIGGER hammerwork_jobs_insert_event AFTER INSERT ON hammerwork_jobs FOR EACH ROW
INSERT INTO hammerwork_events (id, kind, from_status, status, occurred_at, job_id, queue, priority,
    attempt, prev_attempt, outcome, error, started_at, finished_at, workflow_id, workflow_name, batch_id,
    trace_id, correlation_id, payload, result)
SELECT UUID(), 'job', NULL, NEW.status, UTC_TIMESTAMP(6), NEW.id, NEW.queue_name, NEW.priority,
    NEW.attempts, NEW.attempts,
    CASE WHEN JSON_LENGTH(NEW.errors) > 0 THEN
        JSON_UNQUOTE(JSON_EXTRACT(NEW.errors, CONCAT('$[', JSON_LENGTH(NEW.errors) - 1, '].outcome'))) END,
    NEW.error_message, NEW.started_at, COALESCE(NEW.completed_at, NEW.failed_at),
    NEW.workflow_id, NEW.workflow_name, NEW.batch_id, NEW.trace_id, NEW.correlation_id,
    CASE WHEN f.include_payload THEN NEW.payload END,
    CASE WHEN f.include_result AND NEW.status = 'completed' THEN NEW.result_data END
FROM hammerwork_event_flags f
WHERE f.id = 1 AND f.enabled;

DROP TRIGGER IF EXISTS hammerwork_jobs_update_event;
CREATE TRIGGER hammerwork_jobs_update_event AFTER UPDATE ON hammerwork_jobs FOR EACH ROW
INSERT INTO hammerwork_events (id, kind, from_status, status, occurred_at, job_id, queue, priority,
    attempt, prev_attempt, outcome, error, started_at, finished_at, workflow_id, workflow_name, batch_id,
    trace_id, correlation_id, payload, result)
SELECT UUID(), 'job', OLD.status, NEW.status, UTC_TIMESTAMP(6), NEW.id, NEW.queue_name, NEW.priority,
    NEW.attempts, OLD.attempts,
    CASE WHEN JSON_LENGTH(NEW.errors) > 0 THEN
        JSON_UNQUOTE(JSON_EXTRACT(NEW.errors, CONCAT('$[', JSON_LENGTH(NEW.errors) - 1, '].outcome'))) END,
    NEW.error_message, NEW.started_at, COALESCE(NEW.completed_at, NEW.failed_at),
    NEW.workflow_id, NEW.workflow_name, NEW.batch_id, NEW.trace_id, NEW.correlation_id,
    CASE WHEN f.include_payload THEN NEW.payload END,
    CASE WHEN f.include_result AND NEW.status = 'completed' THEN NEW.result_data END
FROM hammerwork_event_flags f
WHERE NEW.status <> OLD.status
  AND f.id = 1 AND f.enabled;

DROP TRIGGER IF EXISTS hammerwork_workflows_insert_event;
CREATE TRIGGER hammerwork_workflows_insert_event AFTER INSERT ON hammerwork_workflows FOR EACH ROW
INSERT INTO hammerwork_events (id, kind, from_status, status, occurred_at, workflow_id, workflow_name,
    trace_id, correlation_id)
SELECT UUID(), 'workflow', NULL, NEW.status, UTC_TIMESTAMP(6), NEW.id, NEW.name, NEW.trace_id, NEW.correlation_id
FROM hammerwork_event_flags f
WHERE f.id = 1 AND f.enabled;

DROP TRIGGER IF EXISTS hammerwork_workflows_update_event;
CREATE TRIGGER hammerwork_workflows_update_event AFTER UPDATE ON hammerwork_workflows FOR EACH ROW
INSERT INTO hammerwork_events (id, kind, from_status, status, occurred_at, workflow_id, workflow_name,
    trace_id, correlation_id)
SELECT UUID(), 'workflow', OLD.status, NEW.status, UTC_TIMESTAMP(6), NEW.id, NEW.name, NEW.trace_id, NEW.correlation_id
FROM hammerwork_event_flags f
WHERE NEW.status <> OLD.status
  AND f.id = 1 AND f.enabled;

DROP TRIGGER IF EXISTS hammerwork_batches_update_event;
CREATE TRIGGER hammerwork_batches_update_event AFTER UPDATE ON hammerwork_batches FOR EACH ROW
INSERT INTO hammerwork_events (id, kind, from_status, status, occurred_at, batch_id)
SELECT UUID(), 'batch', OLD.status, NEW.status, UTC_TIMESTAMP(6), NEW.id
FROM hammerwork_event_flags f
WHERE NEW.status <> OLD.status AND NEW.status IN ('completed', 'partially_failed', 'failed')
  AND f.id = 1 AND f.enabled;

DROP TRIGGER IF EXISTS hammerwork_schedule_runs_insert_event;
CREATE TRIGGER hammerwork_schedule_runs_insert_event AFTER INSERT ON hammerwork_schedule_runs FOR EACH ROW
INSERT INTO hammerwork_events (id, kind, status, occurred_at, schedule_name, job_id, workflow_id)
SELECT UUID(), 'schedule', NEW.outcome, UTC_TIMESTAMP(6), NEW.schedule_name, NEW.job_id, NEW.workflow_id
FROM hammerwork_event_flags f
WHERE f.id = 1 AND f.enabled;

DROP TRIGGER IF EXISTS hammerwork_schedules_update_event;
CREATE TRIGGER hammerwork_schedules_update_event AFTER UPDATE ON hammerwork_schedules FOR EACH ROW
INSERT INTO hammerwork_events (id, kind, status, occurred_at, schedule_name, missed)
SELECT UUID(), 'schedule', 'missed', UTC_TIMESTAMP(6), NEW.name, NEW.missed_slots - OLD.missed_slots
FROM hammerwork_event_flags f
WHERE NEW.missed_slots > OLD.missed_slots
  AND f.id = 1 AND f.enabled;

DROP TRIGGER IF EXISTS hammerwork_queue_pauses_insert_event;
CREATE TRIGGER hammerwork_queue_pauses_insert_event AFTER INSERT ON hammerwork_queue_pauses FOR EACH ROW
INSERT INTO hammerwork_events (id, kind, status, occurred_at, queue)
SELECT UUID(), 'queue', 'paused', UTC_TIMESTAMP(6), NEW.queue_name
FROM hammerwork_event_flags f
WHERE f.id = 1 AND f.enabled;

DROP TRIGGER IF EXISTS hammerwork_queue_pauses_delete_event;
CREATE TRIGGER hammerwork_queue_pauses_delete_event AFTER DELETE ON hammerwork_queue_pauses FOR EACH ROW
INSERT INTO hammerwork_events (id, kind, status, occurred_at, queue)
SELECT UUID(), 'queue', 'resumed', UTC_TIMESTAMP(6), OLD.queue_name
FROM hammerwork_event_flags f
WHERE f.id = 1 AND f.enabled;
