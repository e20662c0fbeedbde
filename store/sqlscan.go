package store

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/workflow"
)

// TextTimeFormat is how a backend without a timestamp type (SQLite) stores
// a time: UTC, fixed width, a space before the time as in
// CURRENT_TIMESTAMP, so comparing the strings compares the times.
const TextTimeFormat = "2006-01-02 15:04:05.000000"

// textTimeParse also accepts a missing or shorter fraction, for rows
// written by hand with CURRENT_TIMESTAMP.
const textTimeParse = "2006-01-02 15:04:05.999999999"

// ParseTextTime reads a time stored in TextTimeFormat (or RFC 3339).
func ParseTextTime(s string) (time.Time, error) {
	t, err := time.ParseInLocation(textTimeParse, s, time.UTC)
	if err != nil {
		if t2, err2 := time.Parse(time.RFC3339Nano, s); err2 == nil {
			return t2.UTC(), nil
		}
		return time.Time{}, fmt.Errorf("parse timestamp %q: %w", s, err)
	}
	return t, nil
}

// SQLTime scans a nullable timestamp column of a database/sql backend,
// whichever way its driver hands it over: a time.Time (MySQL) or text in
// TextTimeFormat (SQLite). The result is UTC either way.
type SQLTime struct {
	Time  time.Time
	Valid bool
}

// Scan implements sql.Scanner.
func (t *SQLTime) Scan(src any) error {
	var err error
	switch v := src.(type) {
	case nil:
		*t = SQLTime{}
		return nil
	case time.Time:
		t.Time = UTC(v)
	case string:
		t.Time, err = ParseTextTime(v)
	case []byte:
		t.Time, err = ParseTextTime(string(v))
	default:
		return fmt.Errorf("scan %T as a timestamp", src)
	}
	t.Valid = err == nil
	return err
}

// Ptr returns the time, or nil for NULL.
func (t SQLTime) Ptr() *time.Time {
	if !t.Valid {
		return nil
	}
	u := t.Time
	return &u
}

// Seconds converts a stored number of seconds (DOUBLE, REAL) back to a
// duration. Rounding to the nanosecond undoes the float's error, so a
// duration reads back as written.
func Seconds(s sql.NullFloat64) time.Duration {
	if !s.Valid {
		return 0
	}
	return time.Duration(math.Round(s.Float64 * 1e9))
}

// Scanner is *sql.Row, *sql.Rows or pgx.Row.
type Scanner interface {
	Scan(dest ...any) error
}

// ScanSQLWorkflow reads one row of a database/sql backend's workflow
// columns: id, name, description, status, failure_policy, priority,
// timeout_seconds, deadline, trace_id, correlation_id, metadata,
// error_message, the five counters, created_at, completed_at, failed_at,
// and the pending and running job counts.
func ScanSQLWorkflow(row Scanner) (*workflow.Record, error) {
	var (
		w                                    workflow.Record
		status, policy                       string
		desc, trace, corr, metadata, errMsg  sql.NullString
		created, deadline, completed, failed SQLTime
		timeout                              sql.NullFloat64
		pending, running                     int
	)
	err := row.Scan(&w.ID, &w.Name, &desc, &status, &policy, &w.Priority,
		&timeout, &deadline, &trace, &corr, &metadata, &errMsg,
		&w.Stats.TotalJobs, &w.Stats.CompletedJobs, &w.Stats.FailedJobs, &w.Stats.CancelledJobs, &w.Stats.SkippedJobs,
		&created, &completed, &failed, &pending, &running)
	if err != nil {
		return nil, err
	}
	w.Description = desc.String
	w.Status = workflow.Status(status)
	w.FailurePolicy = workflow.FailurePolicy(policy)
	w.Timeout = job.Duration(Seconds(timeout))
	w.TraceID = trace.String
	w.CorrelationID = corr.String
	if metadata.Valid {
		w.Metadata = json.RawMessage(metadata.String)
	}
	w.ErrorMessage = errMsg.String
	w.CreatedAt = created.Time
	w.Deadline = deadline.Ptr()
	w.CompletedAt = completed.Ptr()
	w.FailedAt = failed.Ptr()
	FinishStats(&w.Stats, pending, running)
	return &w, nil
}

// ScanSQLJob reads one row of JobColumns from a database/sql backend (and,
// with dependents, one more column: the job's children as a JSON array of
// ids). JSON columns that are NULL or empty arrays read as nil slices, the
// shape every backend returns; children come sorted by id.
func ScanSQLJob(row Scanner, dependents bool) (*job.Job, error) {
	var (
		j                                                       job.Job
		status, depStatus                                       string
		payload, result, errs, retryPolicy, dependsOn, children []byte
		created, scheduled, started, completed, failed          SQLTime
		resultExp, leaseExp                                     SQLTime
		errMsg, wfName, step, cond, trace, corr, parentSp       sql.NullString
		spanCtx, traceState, uniq, leasedBy, token              sql.NullString
		timeout, ttl                                            sql.NullFloat64
	)
	dest := []any{
		&j.ID, &j.Queue, &payload, &status, &j.Priority, &j.Attempts, &j.MaxAttempts,
		&created, &scheduled, &started, &completed, &failed,
		&errMsg, &errs, &timeout, &retryPolicy,
		&result, &resultExp, &ttl,
		&j.BatchID, &j.WorkflowID, &wfName, &step, &dependsOn,
		&depStatus, &j.PendingDependencies, &cond,
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
	j.DependencyStatus = job.DependencyStatus(depStatus)
	j.CreatedAt, j.ScheduledAt = created.Time, scheduled.Time
	j.StartedAt, j.CompletedAt, j.FailedAt = started.Ptr(), completed.Ptr(), failed.Ptr()
	j.ResultExpiresAt, j.LeaseExpiresAt = resultExp.Ptr(), leaseExp.Ptr()
	if len(errs) > 0 {
		if err := json.Unmarshal(errs, &j.Errors); err != nil {
			return nil, fmt.Errorf("decode errors of job %s: %w", j.ID, err)
		}
		if len(j.Errors) == 0 {
			j.Errors = nil
		}
		for i := range j.Errors {
			j.Errors[i].At = UTC(j.Errors[i].At)
		}
	}
	if len(retryPolicy) > 0 {
		if err := json.Unmarshal(retryPolicy, &j.RetryPolicy); err != nil {
			return nil, fmt.Errorf("decode retry_policy of job %s: %w", j.ID, err)
		}
	}
	if result != nil {
		j.Result = json.RawMessage(result)
	}
	j.Timeout = job.Duration(Seconds(timeout))
	j.ResultTTL = job.Duration(Seconds(ttl))
	if err := decodeIDs(dependsOn, &j.DependsOn); err != nil {
		return nil, fmt.Errorf("decode depends_on of job %s: %w", j.ID, err)
	}
	if err := decodeIDs(children, &j.Dependents); err != nil {
		return nil, fmt.Errorf("decode dependents of job %s: %w", j.ID, err)
	}
	slices.SortFunc(j.Dependents, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
	j.ErrorMessage = errMsg.String
	j.WorkflowName = wfName.String
	j.StepName = step.String
	j.Condition = cond.String
	j.TraceID = trace.String
	j.CorrelationID = corr.String
	j.ParentSpanID = parentSp.String
	j.SpanContext = spanCtx.String
	j.TraceState = traceState.String
	j.UniqueKey = uniq.String
	j.LeasedBy = leasedBy.String
	j.LeaseToken = token.String
	return &j, nil
}

// decodeIDs reads a JSON array of ids; NULL and [] leave *out nil.
func decodeIDs(raw []byte, out *[]uuid.UUID) error {
	if len(raw) == 0 {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return err
	}
	if len(*out) == 0 {
		*out = nil
	}
	return nil
}

// ScanSQLJobs reads every row of rows with ScanSQLJob and closes them.
func ScanSQLJobs(rows *sql.Rows, dependents bool) ([]*job.Job, error) {
	defer rows.Close()
	return CollectScanned(rows, func(row Scanner) (*job.Job, error) { return ScanSQLJob(row, dependents) })
}
