package store

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"time"

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
