-- 0007: the caller's W3C tracestate, kept beside span_context so that every
-- attempt sends it to the app with traceparent. Vendors keep their own trace
-- data in it (sampling decisions, tenant ids); dropping it breaks their
-- traces at the queue.
ALTER TABLE hammerwork_jobs ADD COLUMN trace_state TEXT;
