package agent

import "github.com/hammerwork-go/hw-agent/job"

// jobAttrs are the attributes every log line about a job carries, always
// the same keys, so one job, workflow or trace can be followed through the
// logs of every agent.
func jobAttrs(j *job.Job, more ...any) []any {
	workflowID := ""
	if j.WorkflowID != nil {
		workflowID = j.WorkflowID.String()
	}
	attrs := make([]any, 0, 10+len(more))
	attrs = append(attrs, "job_id", j.ID, "queue", j.Queue, "attempt", j.Attempts,
		"workflow_id", workflowID, "trace_id", j.TraceID)
	return append(attrs, more...)
}
