-- 0009: the event outbox, its subscribers and the webhook delivery log.
--
-- Triggers write one hammerwork_events row per state change inside the
-- changing statement (see store.Events and docs/ARCHITECTURE.md, "Events").
-- They are statement-level with transition tables, so a batch of 500
-- completions writes its 500 events in one INSERT ... SELECT, and they
-- return after one EXISTS while no subscriber is enabled. pos is insertion
-- order; SequenceEvents gives committed rows their seq in commit order.
-- A subscriber's config is the sink's JSON document kept as text, byte for
-- byte as written; names compare byte by byte (COLLATE "C") as on every
-- backend.

CREATE TABLE hammerwork_event_subscribers (
    id                   UUID PRIMARY KEY,
    name                 VARCHAR(128) COLLATE "C" NOT NULL UNIQUE,
    kind                 VARCHAR(16) NOT NULL
        CONSTRAINT hammerwork_event_subscribers_kind_check CHECK (kind IN ('webhook', 'stream', 'tail')),
    source               VARCHAR(16) NOT NULL
        CONSTRAINT hammerwork_event_subscribers_source_check CHECK (source IN ('config', 'api')),
    config               TEXT NOT NULL,
    include_payload      BOOLEAN NOT NULL DEFAULT false,
    include_result       BOOLEAN NOT NULL DEFAULT false,
    enabled              BOOLEAN NOT NULL DEFAULT true,
    disabled_reason      TEXT,
    disabled_at          TIMESTAMPTZ,
    cursor_seq           BIGINT NOT NULL DEFAULT 0,
    consecutive_failures INT NOT NULL DEFAULT 0,
    retry_seq            BIGINT NOT NULL DEFAULT 0,
    retry_attempts       INT NOT NULL DEFAULT 0,
    retry_at             TIMESTAMPTZ,
    last_error           TEXT,
    last_delivered_at    TIMESTAMPTZ,
    claimed_by           TEXT,
    claim_token          TEXT,
    claimed_until        TIMESTAMPTZ,
    created_at           TIMESTAMPTZ NOT NULL,
    updated_at           TIMESTAMPTZ NOT NULL
);

CREATE TABLE hammerwork_events (
    pos            BIGSERIAL PRIMARY KEY,
    seq            BIGINT,
    id             UUID NOT NULL DEFAULT gen_random_uuid(),
    kind           VARCHAR(16) NOT NULL,
    from_status    TEXT,
    status         TEXT NOT NULL,
    -- The time of the changing statement, the same for every row it wrote.
    occurred_at    TIMESTAMPTZ NOT NULL DEFAULT statement_timestamp(),
    job_id         UUID,
    queue          TEXT,
    priority       INT,
    attempt        INT,
    prev_attempt   INT,
    outcome        TEXT,
    error          TEXT,
    started_at     TIMESTAMPTZ,
    finished_at    TIMESTAMPTZ,
    workflow_id    UUID,
    workflow_name  TEXT,
    batch_id       UUID,
    schedule_name  TEXT,
    missed         INT,
    trace_id       TEXT,
    correlation_id TEXT,
    payload        JSON,
    result         JSON
);

-- The sequencer's scan: unsequenced rows in pos order.
CREATE INDEX hammerwork_events_unsequenced_idx ON hammerwork_events (pos) WHERE seq IS NULL;

-- seq is unique once given, and only sequenced events are read (by seq,
-- and by id for GetEvent), so both indexes leave unsequenced rows out: a
-- trigger's insert touches two indexes, and the sequencer's UPDATE, off
-- the hot path, fills the other two.
CREATE UNIQUE INDEX hammerwork_events_seq_idx ON hammerwork_events (seq) WHERE seq IS NOT NULL;
CREATE INDEX hammerwork_events_id_idx ON hammerwork_events (id) WHERE seq IS NOT NULL;

-- The sequencer's lock and LatestSeq: the one row holds the last seq given.
CREATE TABLE hammerwork_event_sequence (
    id       INT PRIMARY KEY CONSTRAINT hammerwork_event_sequence_one_row CHECK (id = 1),
    last_seq BIGINT NOT NULL DEFAULT 0
);

INSERT INTO hammerwork_event_sequence (id) VALUES (1);

-- Every attempt at delivering one event to one webhook. Ids are UUIDv7, so
-- (subscriber_id, id) pages a subscriber's log newest first.
CREATE TABLE hammerwork_webhook_deliveries (
    id            UUID PRIMARY KEY,
    subscriber_id UUID NOT NULL REFERENCES hammerwork_event_subscribers (id) ON DELETE CASCADE,
    event_id      UUID NOT NULL,
    event_seq     BIGINT NOT NULL,
    event_type    TEXT NOT NULL,
    attempt       INT NOT NULL,
    outcome       VARCHAR(16) NOT NULL
        CONSTRAINT hammerwork_webhook_deliveries_outcome_check CHECK (outcome IN ('delivered', 'retrying', 'failed')),
    status_code   INT NOT NULL,
    error         TEXT,
    response      TEXT,
    duration_us   BIGINT NOT NULL,
    agent_id      TEXT NOT NULL,
    attempted_at  TIMESTAMPTZ NOT NULL
);

CREATE INDEX hammerwork_webhook_deliveries_subscriber_idx ON hammerwork_webhook_deliveries (subscriber_id, id);

-- CleanupEvents' scan of deliveries past retention.
CREATE INDEX hammerwork_webhook_deliveries_attempted_idx ON hammerwork_webhook_deliveries (attempted_at);

-- FireSchedules adds the slots a catch-up policy let pass; the trigger
-- below turns an increase into a schedule.missed event.
ALTER TABLE hammerwork_schedules ADD COLUMN missed_slots BIGINT NOT NULL DEFAULT 0;

-- hammerwork_record_events is every table's trigger: n is the statement's
-- new rows, o its old rows (UPDATE and DELETE). Each branch is one
-- INSERT ... SELECT, planned the first time its table and operation fire.
CREATE FUNCTION hammerwork_record_events() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    with_payload BOOLEAN;
    with_result  BOOLEAN;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM hammerwork_event_subscribers WHERE enabled) THEN
        RETURN NULL;
    END IF;
    CASE TG_TABLE_NAME || ' ' || TG_OP
    WHEN 'hammerwork_jobs INSERT' THEN
        SELECT bool_or(include_payload), bool_or(include_result) INTO with_payload, with_result
        FROM hammerwork_event_subscribers WHERE enabled;
        INSERT INTO hammerwork_events (kind, status, job_id, queue, priority, attempt, prev_attempt,
            outcome, error, started_at, finished_at, workflow_id, workflow_name, batch_id, trace_id,
            correlation_id, payload, result)
        SELECT 'job', n.status, n.id, n.queue_name, n.priority, n.attempts, n.attempts,
            n.errors -> -1 ->> 'outcome', n.error_message, n.started_at, COALESCE(n.completed_at, n.failed_at),
            n.workflow_id, n.workflow_name, n.batch_id, n.trace_id, n.correlation_id,
            CASE WHEN with_payload THEN n.payload END,
            CASE WHEN with_result AND n.status = 'completed' THEN n.result_data END
        FROM n;
    WHEN 'hammerwork_jobs UPDATE' THEN
        SELECT bool_or(include_payload), bool_or(include_result) INTO with_payload, with_result
        FROM hammerwork_event_subscribers WHERE enabled;
        INSERT INTO hammerwork_events (kind, from_status, status, job_id, queue, priority, attempt,
            prev_attempt, outcome, error, started_at, finished_at, workflow_id, workflow_name, batch_id,
            trace_id, correlation_id, payload, result)
        SELECT 'job', o.status, n.status, n.id, n.queue_name, n.priority, n.attempts, o.attempts,
            n.errors -> -1 ->> 'outcome', n.error_message, n.started_at, COALESCE(n.completed_at, n.failed_at),
            n.workflow_id, n.workflow_name, n.batch_id, n.trace_id, n.correlation_id,
            CASE WHEN with_payload THEN n.payload END,
            CASE WHEN with_result AND n.status = 'completed' THEN n.result_data END
        FROM n JOIN o ON o.id = n.id
        WHERE n.status <> o.status;
    WHEN 'hammerwork_workflows INSERT' THEN
        INSERT INTO hammerwork_events (kind, status, workflow_id, workflow_name, trace_id, correlation_id)
        SELECT 'workflow', n.status, n.id, n.name, n.trace_id, n.correlation_id FROM n;
    WHEN 'hammerwork_workflows UPDATE' THEN
        INSERT INTO hammerwork_events (kind, from_status, status, workflow_id, workflow_name, trace_id, correlation_id)
        SELECT 'workflow', o.status, n.status, n.id, n.name, n.trace_id, n.correlation_id
        FROM n JOIN o ON o.id = n.id
        WHERE n.status <> o.status;
    WHEN 'hammerwork_batches UPDATE' THEN
        INSERT INTO hammerwork_events (kind, from_status, status, batch_id)
        SELECT 'batch', o.status, n.status, n.id
        FROM n JOIN o ON o.id = n.id
        WHERE n.status <> o.status AND n.status IN ('completed', 'partially_failed', 'failed');
    WHEN 'hammerwork_schedule_runs INSERT' THEN
        INSERT INTO hammerwork_events (kind, status, schedule_name, job_id, workflow_id)
        SELECT 'schedule', n.outcome, n.schedule_name, n.job_id, n.workflow_id FROM n;
    WHEN 'hammerwork_schedules UPDATE' THEN
        INSERT INTO hammerwork_events (kind, status, schedule_name, missed)
        SELECT 'schedule', 'missed', n.name, n.missed_slots - o.missed_slots
        FROM n JOIN o ON o.name = n.name
        WHERE n.missed_slots > o.missed_slots;
    WHEN 'hammerwork_queue_pauses INSERT' THEN
        INSERT INTO hammerwork_events (kind, status, queue)
        SELECT 'queue', 'paused', n.queue_name FROM n;
    WHEN 'hammerwork_queue_pauses DELETE' THEN
        INSERT INTO hammerwork_events (kind, status, queue)
        SELECT 'queue', 'resumed', o.queue_name FROM o;
    END CASE;
    RETURN NULL;
END
$$;

CREATE TRIGGER hammerwork_jobs_insert_events AFTER INSERT ON hammerwork_jobs
    REFERENCING NEW TABLE AS n FOR EACH STATEMENT EXECUTE FUNCTION hammerwork_record_events();
CREATE TRIGGER hammerwork_jobs_update_events AFTER UPDATE ON hammerwork_jobs
    REFERENCING OLD TABLE AS o NEW TABLE AS n FOR EACH STATEMENT EXECUTE FUNCTION hammerwork_record_events();
CREATE TRIGGER hammerwork_workflows_insert_events AFTER INSERT ON hammerwork_workflows
    REFERENCING NEW TABLE AS n FOR EACH STATEMENT EXECUTE FUNCTION hammerwork_record_events();
CREATE TRIGGER hammerwork_workflows_update_events AFTER UPDATE ON hammerwork_workflows
    REFERENCING OLD TABLE AS o NEW TABLE AS n FOR EACH STATEMENT EXECUTE FUNCTION hammerwork_record_events();
CREATE TRIGGER hammerwork_batches_update_events AFTER UPDATE ON hammerwork_batches
    REFERENCING OLD TABLE AS o NEW TABLE AS n FOR EACH STATEMENT EXECUTE FUNCTION hammerwork_record_events();
CREATE TRIGGER hammerwork_schedule_runs_insert_events AFTER INSERT ON hammerwork_schedule_runs
    REFERENCING NEW TABLE AS n FOR EACH STATEMENT EXECUTE FUNCTION hammerwork_record_events();
CREATE TRIGGER hammerwork_schedules_update_events AFTER UPDATE ON hammerwork_schedules
    REFERENCING OLD TABLE AS o NEW TABLE AS n FOR EACH STATEMENT EXECUTE FUNCTION hammerwork_record_events();
CREATE TRIGGER hammerwork_queue_pauses_insert_events AFTER INSERT ON hammerwork_queue_pauses
    REFERENCING NEW TABLE AS n FOR EACH STATEMENT EXECUTE FUNCTION hammerwork_record_events();
CREATE TRIGGER hammerwork_queue_pauses_delete_events AFTER DELETE ON hammerwork_queue_pauses
    REFERENCING OLD TABLE AS o FOR EACH STATEMENT EXECUTE FUNCTION hammerwork_record_events();
