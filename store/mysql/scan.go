package mysql

import (
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

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
