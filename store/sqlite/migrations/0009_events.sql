-- 0009: the event outbox (docs/ARCHITECTURE.md, "Events"): subscribers,
-- the events the triggers below write in the transaction of each change,
-- the sequencer, and the webhook delivery log. Types follow 0001: ids are
-- canonical UUID strings, JSON is TEXT, booleans 0/1 INTEGERs, times UTC
-- TEXT in the fixed-width format.

-- Webhooks, streams and tails. The triggers read this table on every
-- change, so it stays tiny: tails are deleted once their claim lapses.
CREATE TABLE hammerwork_event_subscribers (
    id                   TEXT    NOT NULL PRIMARY KEY,
    name                 TEXT    NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 128),
    kind                 TEXT    NOT NULL CHECK (kind IN ('webhook', 'stream', 'tail')),
    source               TEXT    NOT NULL CHECK (source IN ('config', 'api')),
    config               TEXT,
    include_payload      INTEGER NOT NULL DEFAULT 0 CHECK (include_payload IN (0, 1)),
    include_result       INTEGER NOT NULL DEFAULT 0 CHECK (include_result IN (0, 1)),
    enabled              INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    disabled_reason      TEXT,
    disabled_at          TEXT,
    cursor_seq           INTEGER NOT NULL DEFAULT 0,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    retry_seq            INTEGER NOT NULL DEFAULT 0,
    retry_attempts       INTEGER NOT NULL DEFAULT 0,
    retry_at             TEXT,
    last_error           TEXT,
    last_delivered_at    TEXT,
    claimed_by           TEXT,
    claim_token          TEXT,
    claimed_until        TEXT,
    created_at           TEXT    NOT NULL,
    updated_at           TEXT    NOT NULL
);

-- What every trigger asks first (is a subscriber enabled, does one want
-- payloads or results), answered from this index alone.
CREATE INDEX hammerwork_event_subscribers_enabled_idx
    ON hammerwork_event_subscribers (include_payload, include_result)
    WHERE enabled = 1;

-- One row per committed transition. pos is insertion order; seq, commit
-- order, is given by SequenceEvents. The defaults are the trigger's: a
-- random v4 id (version nibble 4, variant 8, 9, a or b) and the time the
-- change was made.
CREATE TABLE hammerwork_events (
    pos            INTEGER PRIMARY KEY AUTOINCREMENT,
    seq            INTEGER,
    id             TEXT    NOT NULL DEFAULT (lower(
        hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2) || '-' ||
        substr('89ab', 1 + (random() & 3), 1) || substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6)))),
    kind           TEXT    NOT NULL,
    from_status    TEXT,
    status         TEXT    NOT NULL,
    occurred_at    TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now') || '000'),
    job_id         TEXT,
    queue          TEXT,
    priority       INTEGER,
    attempt        INTEGER,
    prev_attempt   INTEGER,
    outcome        TEXT,
    error          TEXT,
    started_at     TEXT,
    finished_at    TEXT,
    workflow_id    TEXT,
    workflow_name  TEXT,
    batch_id       TEXT,
    schedule_name  TEXT,
    missed         INTEGER,
    trace_id       TEXT,
    correlation_id TEXT,
    payload        TEXT,
    result         TEXT
);

-- The indexes a trigger's insert touches are the table and the sequencer's
-- scan (unsequenced events in pos order), both appended to. seq and id are
-- indexed once sequenced, in SequenceEvents' batch: ReadEvents and GetEvent
-- read only sequenced events, and a random id's index leaf is written once
-- per batch instead of once per changing statement.
CREATE INDEX hammerwork_events_unsequenced_idx
    ON hammerwork_events (pos)
    WHERE seq IS NULL;

CREATE UNIQUE INDEX hammerwork_events_seq_idx
    ON hammerwork_events (seq)
    WHERE seq IS NOT NULL;

CREATE UNIQUE INDEX hammerwork_events_id_idx
    ON hammerwork_events (id)
    WHERE seq IS NOT NULL;

-- The newest seq given; LatestSeq.
CREATE TABLE hammerwork_event_sequence (
    id       INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    last_seq INTEGER NOT NULL DEFAULT 0
);
INSERT INTO hammerwork_event_sequence (id, last_seq) VALUES (1, 0);

-- Every attempt at delivering an event, newest first by id (UUIDv7).
CREATE TABLE hammerwork_webhook_deliveries (
    id            TEXT    NOT NULL PRIMARY KEY,
    subscriber_id TEXT    NOT NULL REFERENCES hammerwork_event_subscribers (id) ON DELETE CASCADE,
    event_id      TEXT    NOT NULL,
    event_seq     INTEGER NOT NULL,
    event_type    TEXT    NOT NULL,
    attempt       INTEGER NOT NULL,
    outcome       TEXT    NOT NULL CHECK (outcome IN ('delivered', 'retrying', 'failed')),
    status_code   INTEGER NOT NULL,
    error         TEXT,
    response      TEXT,
    duration_us   INTEGER NOT NULL,
    agent_id      TEXT    NOT NULL,
    attempted_at  TEXT    NOT NULL
);

CREATE INDEX hammerwork_webhook_deliveries_subscriber_idx
    ON hammerwork_webhook_deliveries (subscriber_id, id);

-- Slots the catch-up policy let pass, counted by FireSchedules; a rise
-- writes a schedule.missed event.
ALTER TABLE hammerwork_schedules ADD COLUMN missed_slots INTEGER NOT NULL DEFAULT 0;

-- The triggers. Each is FOR EACH ROW and its WHEN clause asks the enabled
-- index above first, so with no enabled subscriber a change costs one
-- index probe and writes nothing. Payload and result are copied only while
-- an enabled subscriber asks for them (result only on completion).

CREATE TRIGGER hammerwork_jobs_insert_event AFTER INSERT ON hammerwork_jobs
WHEN EXISTS (SELECT 1 FROM hammerwork_event_subscribers WHERE enabled = 1)
BEGIN
    INSERT INTO hammerwork_events (kind, status, job_id, queue, priority, attempt, prev_attempt, outcome, error,
        started_at, finished_at, workflow_id, workflow_name, batch_id, trace_id, correlation_id, payload, result)
    VALUES ('job', NEW.status, NEW.id, NEW.queue_name, NEW.priority, NEW.attempts, NEW.attempts,
        json_extract(NEW.errors, '$[#-1].outcome'), NEW.error_message,
        NEW.started_at, COALESCE(NEW.completed_at, NEW.failed_at),
        NEW.workflow_id, NEW.workflow_name, NEW.batch_id, NEW.trace_id, NEW.correlation_id,
        CASE WHEN EXISTS (SELECT 1 FROM hammerwork_event_subscribers WHERE enabled = 1 AND include_payload = 1)
            THEN NEW.payload END,
        CASE WHEN NEW.status = 'completed'
            AND EXISTS (SELECT 1 FROM hammerwork_event_subscribers WHERE enabled = 1 AND include_result = 1)
            THEN NEW.result_data END);
END;

-- UPDATE OF status: statements that do not set the status (lease
-- extensions, result expiry, counters) do not run the trigger at all.
CREATE TRIGGER hammerwork_jobs_update_event AFTER UPDATE OF status ON hammerwork_jobs
WHEN OLD.status IS NOT NEW.status
    AND EXISTS (SELECT 1 FROM hammerwork_event_subscribers WHERE enabled = 1)
BEGIN
    INSERT INTO hammerwork_events (kind, from_status, status, job_id, queue, priority, attempt, prev_attempt,
        outcome, error, started_at, finished_at, workflow_id, workflow_name, batch_id, trace_id, correlation_id,
        payload, result)
    VALUES ('job', OLD.status, NEW.status, NEW.id, NEW.queue_name, NEW.priority, NEW.attempts, OLD.attempts,
        json_extract(NEW.errors, '$[#-1].outcome'), NEW.error_message,
        NEW.started_at, COALESCE(NEW.completed_at, NEW.failed_at),
        NEW.workflow_id, NEW.workflow_name, NEW.batch_id, NEW.trace_id, NEW.correlation_id,
        CASE WHEN EXISTS (SELECT 1 FROM hammerwork_event_subscribers WHERE enabled = 1 AND include_payload = 1)
            THEN NEW.payload END,
        CASE WHEN NEW.status = 'completed'
            AND EXISTS (SELECT 1 FROM hammerwork_event_subscribers WHERE enabled = 1 AND include_result = 1)
            THEN NEW.result_data END);
END;

CREATE TRIGGER hammerwork_workflows_insert_event AFTER INSERT ON hammerwork_workflows
WHEN EXISTS (SELECT 1 FROM hammerwork_event_subscribers WHERE enabled = 1)
BEGIN
    INSERT INTO hammerwork_events (kind, status, workflow_id, workflow_name, trace_id, correlation_id)
    VALUES ('workflow', NEW.status, NEW.id, NEW.name, NEW.trace_id, NEW.correlation_id);
END;

CREATE TRIGGER hammerwork_workflows_update_event AFTER UPDATE OF status ON hammerwork_workflows
WHEN OLD.status IS NOT NEW.status
    AND EXISTS (SELECT 1 FROM hammerwork_event_subscribers WHERE enabled = 1)
BEGIN
    INSERT INTO hammerwork_events (kind, from_status, status, workflow_id, workflow_name, trace_id, correlation_id)
    VALUES ('workflow', OLD.status, NEW.status, NEW.id, NEW.name, NEW.trace_id, NEW.correlation_id);
END;

CREATE TRIGGER hammerwork_batches_update_event AFTER UPDATE OF status ON hammerwork_batches
WHEN OLD.status IS NOT NEW.status AND NEW.status IN ('completed', 'partially_failed', 'failed')
    AND EXISTS (SELECT 1 FROM hammerwork_event_subscribers WHERE enabled = 1)
BEGIN
    INSERT INTO hammerwork_events (kind, from_status, status, batch_id)
    VALUES ('batch', OLD.status, NEW.status, NEW.id);
END;

CREATE TRIGGER hammerwork_schedule_runs_insert_event AFTER INSERT ON hammerwork_schedule_runs
WHEN EXISTS (SELECT 1 FROM hammerwork_event_subscribers WHERE enabled = 1)
BEGIN
    INSERT INTO hammerwork_events (kind, status, schedule_name, job_id, workflow_id)
    VALUES ('schedule', NEW.outcome, NEW.schedule_name, NEW.job_id, NEW.workflow_id);
END;

CREATE TRIGGER hammerwork_schedules_missed_event AFTER UPDATE OF missed_slots ON hammerwork_schedules
WHEN NEW.missed_slots > OLD.missed_slots
    AND EXISTS (SELECT 1 FROM hammerwork_event_subscribers WHERE enabled = 1)
BEGIN
    INSERT INTO hammerwork_events (kind, status, schedule_name, missed)
    VALUES ('schedule', 'missed', NEW.name, NEW.missed_slots - OLD.missed_slots);
END;

CREATE TRIGGER hammerwork_queue_pauses_insert_event AFTER INSERT ON hammerwork_queue_pauses
WHEN EXISTS (SELECT 1 FROM hammerwork_event_subscribers WHERE enabled = 1)
BEGIN
    INSERT INTO hammerwork_events (kind, status, queue) VALUES ('queue', 'paused', NEW.queue_name);
END;

CREATE TRIGGER hammerwork_queue_pauses_delete_event AFTER DELETE ON hammerwork_queue_pauses
WHEN EXISTS (SELECT 1 FROM hammerwork_event_subscribers WHERE enabled = 1)
BEGIN
    INSERT INTO hammerwork_events (kind, status, queue) VALUES ('queue', 'resumed', OLD.queue_name);
END;
