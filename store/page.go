package store

import (
	"fmt"
	"strings"

	"github.com/google/uuid"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/workflow"
)

// Paging is where one page of a listing starts and how long it is, decided
// here so that every backend's listings page alike: newest first (id DESC:
// ids are UUIDv7), a page holds ids below the cursor, and NextCursor is the
// id of a full page's last row when another row follows.
type Paging struct {
	// Limit is the page length after the default and the cap.
	Limit int
	// Before is the cursor: the page holds ids below it. Nil on the first
	// page.
	Before *uuid.UUID
}

// Paging applies List's default and cap and parses the cursor; a cursor
// that is not a job id is ErrInvalid.
func (p ListParams) Paging() (Paging, error) {
	return newPaging("job", p.ListLimit(), p.Cursor)
}

// Paging applies List's default and cap and parses the cursor; a cursor
// that is not a workflow id is ErrInvalid.
func (p ListWorkflowsParams) Paging() (Paging, error) {
	return newPaging("workflow", p.ListLimit(), p.Cursor)
}

func newPaging(noun string, limit int, cursor string) (Paging, error) {
	pg := Paging{Limit: limit}
	if cursor == "" {
		return pg, nil
	}
	id, err := uuid.Parse(cursor)
	if err != nil {
		return Paging{}, fmt.Errorf("%w: cursor %q is not a %s id", ErrInvalid, cursor, noun)
	}
	pg.Before = &id
	return pg, nil
}

// Fetch is how many rows a backend reads: one beyond the page, which tells
// whether another page follows without a count.
func (pg Paging) Fetch() int { return pg.Limit + 1 }

// BeforeString is the cursor as text for a backend that stores ids as text,
// or nil (SQL NULL) on the first page.
func (pg Paging) BeforeString() any {
	if pg.Before == nil {
		return nil
	}
	return pg.Before.String()
}

// JobPage trims jobs read with Fetch (id DESC) to the page and sets the
// next page's cursor, empty on the last page. Jobs is never nil.
func (pg Paging) JobPage(rows []*job.Job) *ListPage {
	jobs, next := cut(pg, rows, func(j *job.Job) uuid.UUID { return j.ID })
	return &ListPage{Jobs: jobs, NextCursor: next}
}

// WorkflowPage trims workflows read with Fetch (id DESC) to the page and
// sets the next page's cursor, empty on the last page. Workflows is never
// nil.
func (pg Paging) WorkflowPage(rows []*workflow.Record) *WorkflowPage {
	wfs, next := cut(pg, rows, func(w *workflow.Record) uuid.UUID { return w.ID })
	return &WorkflowPage{Workflows: wfs, NextCursor: next}
}

func cut[T any](pg Paging, rows []T, id func(T) uuid.UUID) ([]T, string) {
	if rows == nil {
		return []T{}, ""
	}
	if len(rows) <= pg.Limit {
		return rows, ""
	}
	rows = rows[:pg.Limit]
	return rows, id(rows[pg.Limit-1]).String()
}

// Filter is one condition of a job listing: a fixed column of
// hammerwork_jobs, its operator and the value a backend binds.
type Filter struct {
	Column string
	Op     string // "=", or "<" for the page's cursor
	Value  any
}

// Filters lists the conditions of a job listing in a fixed order, the
// page's cursor last. Ids are uuid.UUID values, which every driver binds.
func (p ListParams) Filters(pg Paging) []Filter {
	var out []Filter
	add := func(col, op string, v any) { out = append(out, Filter{col, op, v}) }
	if p.Queue != "" {
		add("queue_name", "=", p.Queue)
	}
	if p.Status != "" {
		add("status", "=", string(p.Status))
	}
	if p.DependencyStatus != "" {
		add("dependency_status", "=", string(p.DependencyStatus))
	}
	if p.WorkflowID != nil {
		add("workflow_id", "=", *p.WorkflowID)
	}
	if pg.Before != nil {
		add("id", "<", *pg.Before)
	}
	return out
}

// WhereClause renders filters as " WHERE a.col op ? AND ..." (empty when
// there are none) for a table alias (or "" for none) and the dialect's
// placeholder for the n-th argument, from 1; it returns the arguments in
// the same order. Columns and operators are fixed strings, never input.
func WhereClause(fs []Filter, alias string, placeholder func(n int) string) (string, []any) {
	if len(fs) == 0 {
		return "", nil
	}
	if alias != "" {
		alias += "."
	}
	conds := make([]string, len(fs))
	args := make([]any, len(fs))
	for i, f := range fs {
		conds[i] = alias + f.Column + " " + f.Op + " " + placeholder(i+1)
		args[i] = f.Value
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}
