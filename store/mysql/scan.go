package mysql

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
)

// jobColumns renders the select list for a table alias ("j"), built once
// from the fixed names above.
func jobColumns(alias string) string {
	cols := make([]string, len(store.JobColumns))
	for i, c := range store.JobColumns {
		if c == "result_data" {
			cols[i] = fmt.Sprintf("CASE WHEN %[1]s.result_expires_at <= UTC_TIMESTAMP(6) THEN NULL ELSE %[1]s.result_data END", alias)
			continue
		}
		cols[i] = alias + ".`" + c + "`"
	}
	return strings.Join(cols, ", ")
}

// dependentsColumn lists the children of j from the edge table, as a JSON
// array: Get, Cancel and Retry return it after the job columns.
const dependentsColumn = `(SELECT JSON_ARRAYAGG(d.job_id) FROM hammerwork_job_dependencies d WHERE d.depends_on_id = j.id)`

var (
	jobCols     = jobColumns("j")
	fullJobCols = jobCols + ", " + dependentsColumn
)

// rowScanner is *sql.Row or *sql.Rows.
type rowScanner interface {
	Scan(dest ...any) error
}

// scanJob reads one row of jobCols (and, with dependents, dependentsColumn).
func scanJob(row rowScanner, dependents bool) (*job.Job, error) {
	var (
		j                                                       job.Job
		status, depStatus                                       string
		priority, attempts, maxAttempts, pendingDeps            int
		payload, result, errs, retryPolicy, dependsOn, children []byte
		started, completed, failed, resultExp, leaseExp         sql.NullTime
		errMsg, wfName, step, cond, trace, corr, parentSp       sql.NullString
		spanCtx, traceState, uniq, leasedBy, token              sql.NullString
		timeout, ttl                                            sql.NullFloat64
		batchID, workflowID                                     uuid.NullUUID
	)
	dest := []any{
		&j.ID, &j.Queue, &payload, &status, &priority, &attempts, &maxAttempts,
		&j.CreatedAt, &j.ScheduledAt, &started, &completed, &failed,
		&errMsg, &errs, &timeout, &retryPolicy,
		&result, &resultExp, &ttl,
		&batchID, &workflowID, &wfName, &step, &dependsOn,
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
	j.Attempts = attempts
	j.MaxAttempts = maxAttempts
	j.CreatedAt = store.UTC(j.CreatedAt)
	j.ScheduledAt = store.UTC(j.ScheduledAt)
	j.StartedAt = utcPtr(started)
	j.CompletedAt = utcPtr(completed)
	j.FailedAt = utcPtr(failed)
	j.ErrorMessage = errMsg.String
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
	j.Timeout = job.Duration(store.Seconds(timeout))
	if len(retryPolicy) > 0 {
		if err := json.Unmarshal(retryPolicy, &j.RetryPolicy); err != nil {
			return nil, fmt.Errorf("decode retry_policy of job %s: %w", j.ID, err)
		}
	}
	if result != nil {
		j.Result = json.RawMessage(result)
	}
	j.ResultExpiresAt = utcPtr(resultExp)
	j.ResultTTL = job.Duration(store.Seconds(ttl))
	if batchID.Valid {
		j.BatchID = &batchID.UUID
	}
	if workflowID.Valid {
		j.WorkflowID = &workflowID.UUID
	}
	j.WorkflowName = wfName.String
	j.StepName = step.String
	if err := decodeIDs(dependsOn, &j.DependsOn); err != nil {
		return nil, fmt.Errorf("decode depends_on of job %s: %w", j.ID, err)
	}
	if err := decodeIDs(children, &j.Dependents); err != nil {
		return nil, fmt.Errorf("decode dependents of job %s: %w", j.ID, err)
	}
	slices.SortFunc(j.Dependents, compareIDs)
	j.DependencyStatus = job.DependencyStatus(depStatus)
	j.PendingDependencies = pendingDeps
	j.Condition = cond.String
	j.TraceID = trace.String
	j.CorrelationID = corr.String
	j.ParentSpanID = parentSp.String
	j.SpanContext = spanCtx.String
	j.TraceState = traceState.String
	j.UniqueKey = uniq.String
	j.LeasedBy = leasedBy.String
	j.LeaseExpiresAt = utcPtr(leaseExp)
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

// scanJobs scans every row of rows and closes them.
func scanJobs(rows *sql.Rows, dependents bool) ([]*job.Job, error) {
	defer rows.Close()
	var out []*job.Job
	for rows.Next() {
		j, err := scanJob(rows, dependents)
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, rows.Err()
}

func utcPtr(t sql.NullTime) *time.Time {
	if !t.Valid {
		return nil
	}
	u := store.UTC(t.Time)
	return &u
}

// nullStr stores an empty optional string as NULL.
func nullStr(s string) sql.NullString {
	return sql.NullString{String: s, Valid: s != ""}
}

// nullSeconds stores a zero duration as NULL.
func nullSeconds(d time.Duration) sql.NullFloat64 {
	return sql.NullFloat64{Float64: d.Seconds(), Valid: d != 0}
}

// compareIDs orders ids as the database does: CHAR(36) lowercase hex under a
// binary collation sorts like the UUID bytes.
func compareIDs(a, b uuid.UUID) int { return strings.Compare(a.String(), b.String()) }

// sortedIDs returns a sorted copy of ids without duplicates: rows are locked
// and updated in this order, so two transactions never wait on each other in
// opposite orders.
func sortedIDs(ids []uuid.UUID) []uuid.UUID {
	out := slices.Clone(ids)
	slices.SortFunc(out, compareIDs)
	return slices.Compact(out)
}

// placeholders returns "?, ?, ..." for n values.
func placeholders(n int) string {
	if n <= 0 {
		return ""
	}
	return strings.Repeat("?, ", n-1) + "?"
}

// idArgs turns ids into query arguments.
func idArgs(ids []uuid.UUID) []any {
	out := make([]any, len(ids))
	for i, id := range ids {
		out[i] = id.String()
	}
	return out
}
