-- 0007: the caller's W3C tracestate, kept beside span_context, mirroring
-- store/postgres/migrations/0007_trace_state.sql. Re-runnable: a column that
-- already exists (error 1060) counts as applied.
ALTER TABLE hammerwork_jobs ADD COLUMN trace_state TEXT NULL AFTER span_context;
