package store

// JobColumns is every column of hammerwork_jobs in the order each backend's
// row scanner reads them: one list, so a column added by a migration is
// added to every backend's select list at once.
var JobColumns = []string{
	"id", "queue_name", "payload", "status", "priority", "attempts", "max_attempts",
	"created_at", "scheduled_at", "started_at", "completed_at", "failed_at",
	"error_message", "errors", "timeout_seconds", "retry_policy",
	"result_data", "result_expires_at", "result_ttl_seconds",
	"batch_id", "workflow_id", "workflow_name", "step_name", "depends_on",
	"dependency_status", "pending_dependencies", "condition",
	"trace_id", "correlation_id", "parent_span_id", "span_context", "trace_state", "unique_key",
	"leased_by", "lease_expires_at", "lease_token",
}
