package postgres

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
)

// jobColumns renders the select list for a table alias ("j"), built once
// from the fixed names above.
func jobColumns(alias string) string {
	cols := make([]string, len(store.JobColumns))
	for i, c := range store.JobColumns {
		if c == "result_data" {
			cols[i] = fmt.Sprintf("CASE WHEN %[1]s.result_expires_at <= now() THEN NULL ELSE %[1]s.result_data END", alias)
			continue
		}
		cols[i] = alias + "." + c
	}
	return strings.Join(cols, ", ")
}

// dependentsColumn lists the children of j from the edge table: Get, Cancel
// and Retry return it after the job columns.
const dependentsColumn = `(SELECT array_agg(d.job_id ORDER BY d.job_id) FROM hammerwork_job_dependencies d WHERE d.depends_on_id = j.id)`

var (
	jobCols     = jobColumns("j")
	fullJobCols = jobCols + ", " + dependentsColumn
)

// scanJob reads one row of jobCols (and, with dependents, dependentsColumn).
func scanJob(row store.Scanner, dependents bool) (*job.Job, error) {
	var (
		j                                                 job.Job
		status, depStatus                                 string
		priority                                          int16
		attempts, maxAttempts, pendingDeps                int32
		payload, result, errs, retryPolicy, dependsOn     []byte
		started, completed, failed, resultExp, leaseExp   *time.Time
		errMsg, wfName, step, cond, trace, corr, parentSp *string
		spanCtx, traceState, uniq, leasedBy, token        *string
		timeout, ttl                                      *float64
		children                                          []uuid.UUID
	)
	dest := []any{
		&j.ID, &j.Queue, &payload, &status, &priority, &attempts, &maxAttempts,
		&j.CreatedAt, &j.ScheduledAt, &started, &completed, &failed,
		&errMsg, &errs, &timeout, &retryPolicy,
		&result, &resultExp, &ttl,
		&j.BatchID, &j.WorkflowID, &wfName, &step, &dependsOn,
		&depStatus, &pendingDeps, &cond,
		&trace, &corr, &parentSp, &spanCtx, &traceState, &uniq,
		&leasedBy, &leaseExp, &token,
	}
	if dependents {
		dest = append(dest, &children)
	}
	if err := row.Scan(dest...); err != nil {
		return nil, err
	}
	j.Payload = json.RawMessage(payload)
	j.Status = job.Status(status)
	j.Priority = job.Priority(priority)
	j.Attempts = int(attempts)
	j.MaxAttempts = int(maxAttempts)
	j.CreatedAt = store.UTC(j.CreatedAt)
	j.ScheduledAt = store.UTC(j.ScheduledAt)
	j.StartedAt = utcPtr(started)
	j.CompletedAt = utcPtr(completed)
	j.FailedAt = utcPtr(failed)
	j.ErrorMessage = str(errMsg)
	if len(errs) > 0 {
		if err := json.Unmarshal(errs, &j.Errors); err != nil {
			return nil, fmt.Errorf("decode errors of job %s: %w", j.ID, err)
		}
		if len(j.Errors) == 0 {
			j.Errors = nil
		}
		for i := range j.Errors {
			j.Errors[i].At = store.UTC(j.Errors[i].At)
		}
	}
	j.Timeout = job.Duration(seconds(timeout))
	if len(retryPolicy) > 0 {
		if err := json.Unmarshal(retryPolicy, &j.RetryPolicy); err != nil {
			return nil, fmt.Errorf("decode retry_policy of job %s: %w", j.ID, err)
		}
	}
	if result != nil {
		j.Result = json.RawMessage(result)
	}
	j.ResultExpiresAt = utcPtr(resultExp)
	j.ResultTTL = job.Duration(seconds(ttl))
	j.WorkflowName = str(wfName)
	j.StepName = str(step)
	if len(dependsOn) > 0 {
		if err := json.Unmarshal(dependsOn, &j.DependsOn); err != nil {
			return nil, fmt.Errorf("decode depends_on of job %s: %w", j.ID, err)
		}
		if len(j.DependsOn) == 0 {
			j.DependsOn = nil
		}
	}
	if len(children) > 0 {
		j.Dependents = children
	}
	j.DependencyStatus = job.DependencyStatus(depStatus)
	j.PendingDependencies = int(pendingDeps)
	j.Condition = str(cond)
	j.TraceID = str(trace)
	j.CorrelationID = str(corr)
	j.ParentSpanID = str(parentSp)
	j.SpanContext = str(spanCtx)
	j.TraceState = str(traceState)
	j.UniqueKey = str(uniq)
	j.LeasedBy = str(leasedBy)
	j.LeaseExpiresAt = utcPtr(leaseExp)
	j.LeaseToken = str(token)
	return &j, nil
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := store.UTC(*t)
	return &u
}

func str(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// nullStr stores an empty optional string as NULL.
func nullStr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// seconds converts a stored DOUBLE PRECISION number of seconds back to a
// duration, rounded to the microsecond the database keeps.
func seconds(f *float64) time.Duration {
	if f == nil {
		return 0
	}
	return time.Duration(*f * float64(time.Second)).Round(time.Microsecond)
}

// nullSeconds stores a zero duration as NULL.
func nullSeconds(d time.Duration) *float64 {
	if d == 0 {
		return nil
	}
	f := d.Seconds()
	return &f
}

// collectJobs scans every row of rows.
func collectJobs(rows pgx.Rows, dependents bool) ([]*job.Job, error) {
	defer rows.Close()
	return store.CollectScanned(rows, func(row store.Scanner) (*job.Job, error) { return scanJob(row, dependents) })
}

// splitLeases turns refs into the parallel arrays the statements unnest.
func splitLeases(refs []store.LeaseRef) (ids []uuid.UUID, tokens []string) {
	ids = make([]uuid.UUID, len(refs))
	tokens = make([]string, len(refs))
	for i, r := range refs {
		ids[i], tokens[i] = r.ID, r.Token
	}
	return ids, tokens
}
