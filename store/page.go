package store

import (
	"fmt"

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
