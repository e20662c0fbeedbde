package sqlite

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
)

// ts formats a time for storage, in the text form store.SQLTime reads.
func ts(t time.Time) string { return store.UTC(t).Format(store.TextTimeFormat) }

// tsOrNow formats t, or now when t is zero.
func tsOrNow(t, now time.Time) string {
	if t.IsZero() {
		return ts(now)
	}
	return ts(t)
}

func parseNullTS(s sql.NullString) (*time.Time, error) {
	if !s.Valid {
		return nil, nil
	}
	t, err := store.ParseTextTime(s.String)
	if err != nil {
		return nil, err
	}
	return &t, nil
}

// nullString stores an empty optional string as NULL.
func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// nullSeconds stores a zero duration as NULL.
func nullSeconds(d time.Duration) any {
	if d == 0 {
		return nil
	}
	return d.Seconds()
}

func nullUUID(id *uuid.UUID) any {
	if id == nil {
		return nil
	}
	return id.String()
}

// jobColumns is every column of hammerwork_jobs in scanJob's order.
var jobColumns = strings.Join(store.JobColumns, ", ")

type scanner interface {
	Scan(dest ...any) error
}

// scanJob reads one row of jobColumns. DependsOn comes from the depends_on
// column; Dependents is empty (only Get looks the edges up).
func scanJob(row scanner) (*job.Job, error) {
	var (
		j                                                job.Job
		id, payload, status, createdAt, scheduledAt      string
		errorsJSON, dependsOn, depStatus                 string
		startedAt, completedAt, failedAt, errMessage     sql.NullString
		timeoutSecs, ttlSecs                             sql.NullFloat64
		retryPolicy, result, resultExpiresAt             sql.NullString
		batchID, workflowID, workflowName, stepName      sql.NullString
		condition, traceID, correlationID                sql.NullString
		parentSpanID, spanContext, traceState, uniqueKey sql.NullString
		leasedBy, leaseExpiresAt, leaseToken             sql.NullString
	)
	err := row.Scan(&id, &j.Queue, &payload, &status, &j.Priority, &j.Attempts, &j.MaxAttempts,
		&createdAt, &scheduledAt, &startedAt, &completedAt, &failedAt,
		&errMessage, &errorsJSON, &timeoutSecs, &retryPolicy,
		&result, &resultExpiresAt, &ttlSecs,
		&batchID, &workflowID, &workflowName, &stepName, &dependsOn,
		&depStatus, &j.PendingDependencies, &condition,
		&traceID, &correlationID, &parentSpanID, &spanContext, &traceState, &uniqueKey,
		&leasedBy, &leaseExpiresAt, &leaseToken)
	if err != nil {
		return nil, err
	}
	if j.ID, err = uuid.Parse(id); err != nil {
		return nil, fmt.Errorf("job id %q: %w", id, err)
	}
	bad := func(col string, err error) (*job.Job, error) {
		return nil, fmt.Errorf("job %s: column %s: %w", id, col, err)
	}
	j.Payload = json.RawMessage(payload)
	j.Status = job.Status(status)
	j.DependencyStatus = job.DependencyStatus(depStatus)
	if j.CreatedAt, err = store.ParseTextTime(createdAt); err != nil {
		return bad("created_at", err)
	}
	if j.ScheduledAt, err = store.ParseTextTime(scheduledAt); err != nil {
		return bad("scheduled_at", err)
	}
	for _, c := range []struct {
		name string
		src  sql.NullString
		dst  **time.Time
	}{
		{"started_at", startedAt, &j.StartedAt},
		{"completed_at", completedAt, &j.CompletedAt},
		{"failed_at", failedAt, &j.FailedAt},
		{"result_expires_at", resultExpiresAt, &j.ResultExpiresAt},
		{"lease_expires_at", leaseExpiresAt, &j.LeaseExpiresAt},
	} {
		if *c.dst, err = parseNullTS(c.src); err != nil {
			return bad(c.name, err)
		}
	}
	j.Errors = []job.AttemptError{}
	if err := json.Unmarshal([]byte(errorsJSON), &j.Errors); err != nil {
		return bad("errors", err)
	}
	j.DependsOn = []uuid.UUID{}
	if err := json.Unmarshal([]byte(dependsOn), &j.DependsOn); err != nil {
		return bad("depends_on", err)
	}
	j.Dependents = []uuid.UUID{}
	if retryPolicy.Valid {
		j.RetryPolicy = new(job.RetryPolicy)
		if err := json.Unmarshal([]byte(retryPolicy.String), j.RetryPolicy); err != nil {
			return bad("retry_policy", err)
		}
	}
	if result.Valid {
		j.Result = json.RawMessage(result.String)
	}
	j.Timeout = job.Duration(store.Seconds(timeoutSecs))
	j.ResultTTL = job.Duration(store.Seconds(ttlSecs))
	if j.BatchID, err = parseNullUUID(batchID); err != nil {
		return bad("batch_id", err)
	}
	if j.WorkflowID, err = parseNullUUID(workflowID); err != nil {
		return bad("workflow_id", err)
	}
	j.ErrorMessage = errMessage.String
	j.WorkflowName = workflowName.String
	j.StepName = stepName.String
	j.Condition = condition.String
	j.TraceID = traceID.String
	j.CorrelationID = correlationID.String
	j.ParentSpanID = parentSpanID.String
	j.SpanContext = spanContext.String
	j.TraceState = traceState.String
	j.UniqueKey = uniqueKey.String
	j.LeasedBy = leasedBy.String
	j.LeaseToken = leaseToken.String
	return &j, nil
}

func parseNullUUID(s sql.NullString) (*uuid.UUID, error) {
	if !s.Valid {
		return nil, nil
	}
	id, err := uuid.Parse(s.String)
	if err != nil {
		return nil, err
	}
	return &id, nil
}

// scanJobs reads every row of jobColumns.
func scanJobs(rows *sql.Rows) ([]*job.Job, error) {
	defer rows.Close()
	var jobs []*job.Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, err
		}
		jobs = append(jobs, j)
	}
	return jobs, rows.Err()
}
