package store

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/hammerwork-go/hw-agent/job"
)

// MaxBatchJobs bounds one batch: a batch is one transaction, and a bigger
// one would hold its locks (and, on SQLite, the only writer) for too long.
const MaxBatchJobs = 10000

// FailureMode says what a failed job of a batch does to its siblings.
type FailureMode string

const (
	// ContinueOnError: a failure does not affect the other jobs (default).
	ContinueOnError FailureMode = "continue_on_error"
	// FailFast: when a job of the batch ends failed, its still-pending
	// siblings are cancelled (running ones finish).
	FailFast FailureMode = "fail_fast"
	// CollectErrors: like ContinueOnError, and the batch reports the failed
	// jobs with their errors.
	CollectErrors FailureMode = "collect_errors"
)

// Valid reports whether m is a known mode; empty means the default.
func (m FailureMode) Valid() bool {
	switch m {
	case "", ContinueOnError, FailFast, CollectErrors:
		return true
	}
	return false
}

// BatchStatus is derived from a batch's counters.
type BatchStatus string

const (
	BatchPending         BatchStatus = "pending"          // nothing started
	BatchProcessing      BatchStatus = "processing"       // started, not finished
	BatchCompleted       BatchStatus = "completed"        // all jobs completed
	BatchPartiallyFailed BatchStatus = "partially_failed" // finished: some completed, some failed or cancelled
	BatchFailed          BatchStatus = "failed"           // finished: none completed
)

// Batch is one row of hammerwork_batches as GetBatch reports it.
// PendingJobs counts jobs not finished yet (pending or running); a skipped
// job (a workflow batch step whose condition was false) counts as completed.
type Batch struct {
	ID            uuid.UUID   `json:"id"`
	Name          string      `json:"name,omitempty"`
	FailureMode   FailureMode `json:"failure_mode"`
	Status        BatchStatus `json:"status"`
	TotalJobs     int         `json:"total_jobs"`
	PendingJobs   int         `json:"pending_jobs"`
	CompletedJobs int         `json:"completed_jobs"`
	FailedJobs    int         `json:"failed_jobs"`
	CancelledJobs int         `json:"cancelled_jobs"`
	CreatedAt     time.Time   `json:"created_at"`
	CompletedAt   *time.Time  `json:"completed_at,omitempty"`
	// Errors lists the failed jobs of a collect_errors batch.
	Errors []BatchError `json:"errors,omitempty"`
}

// BatchError is one failed job of a collect_errors batch.
type BatchError struct {
	JobID uuid.UUID `json:"job_id"`
	Error string    `json:"error"`
}

// Batches writes jobs as one batch and reports on it. The batch's counters
// and status are kept by Resolve in the transactions of its jobs'
// transitions (Complete, Fail, RescueExpired, Cancel, Retry).
type Batches interface {
	// EnqueueBatch validates every job, then writes the batch row and the
	// jobs (batch_id stamped, unique keys honoured as in Enqueue) in one
	// transaction. More than MaxBatchJobs jobs, none, or an unknown failure
	// mode: ErrInvalid, nothing written.
	EnqueueBatch(ctx context.Context, p EnqueueBatchParams) (*BatchEnqueued, error)
	// GetBatch returns a batch with its counters (and, for collect_errors,
	// its failed jobs), or ErrNotFound. A pending batch with a job already
	// running reads as processing.
	GetBatch(ctx context.Context, id uuid.UUID) (*Batch, error)
}

// EnqueueBatchParams carries a batch to write.
type EnqueueBatchParams struct {
	// ID: zero generates a UUIDv7.
	ID          uuid.UUID
	Name        string
	FailureMode FailureMode
	Jobs        []NewJob
	Now         time.Time
}

// BatchEnqueued is what EnqueueBatch wrote. Jobs are in input order; a
// duplicate (unique key already live) is the existing job with Duplicate
// set, and is not counted in the batch.
type BatchEnqueued struct {
	Batch *Batch
	Jobs  []*job.Job
}

// Validate checks the batch before anything is written.
func (p EnqueueBatchParams) Validate() error {
	if len(p.Jobs) == 0 {
		return fmt.Errorf("%w: a batch needs at least one job", ErrInvalid)
	}
	if len(p.Jobs) > MaxBatchJobs {
		return fmt.Errorf("%w: a batch holds at most %d jobs, got %d", ErrInvalid, MaxBatchJobs, len(p.Jobs))
	}
	if !p.FailureMode.Valid() {
		return fmt.Errorf("%w: failure_mode %q is not continue_on_error, fail_fast or collect_errors", ErrInvalid, p.FailureMode)
	}
	if err := CheckHeaderValue("name", p.Name); err != nil {
		return err
	}
	for i, n := range p.Jobs {
		if err := n.Validate(); err != nil {
			return fmt.Errorf("job %d: %w", i, err)
		}
	}
	return nil
}

// Stamped validates the batch and returns its id (a new UUIDv7 when p.ID
// is zero) and copies of its jobs with batch_id set, ready for a backend to
// write.
func (p EnqueueBatchParams) Stamped() (uuid.UUID, []NewJob, error) {
	if err := p.Validate(); err != nil {
		return uuid.Nil, nil, err
	}
	id := p.ID
	if id == uuid.Nil {
		var err error
		if id, err = uuid.NewV7(); err != nil {
			return uuid.Nil, nil, fmt.Errorf("generate batch id: %w", err)
		}
	}
	news := make([]NewJob, len(p.Jobs))
	for i, n := range p.Jobs {
		n.BatchID = &id
		news[i] = n
	}
	return id, news, nil
}

// Mode returns the failure mode with the default applied.
func (p EnqueueBatchParams) Mode() FailureMode {
	if p.FailureMode == "" {
		return ContinueOnError
	}
	return p.FailureMode
}

// BatchState is the part of a batch row resolution reads and writes,
// locked for the rest of the transaction.
type BatchState struct {
	ID          uuid.UUID
	FailureMode FailureMode
	Status      BatchStatus
	Total       int
	Completed   int
	Failed      int
	Cancelled   int
	CompletedAt *time.Time
}

// Pending is the number of jobs not finished yet.
func (b *BatchState) Pending() int { return b.Total - b.Completed - b.Failed - b.Cancelled }

// counter returns the counter a job in status s belongs to; skipped counts
// as completed (the step ran its course).
func (b *BatchState) counter(s job.Status) *int {
	switch s {
	case job.StatusCompleted, job.StatusSkipped:
		return &b.Completed
	case job.StatusFailed:
		return &b.Failed
	case job.StatusCancelled:
		return &b.Cancelled
	}
	return nil
}

// settle derives the status from the counters.
func (b *BatchState) settle(now time.Time) {
	done := b.Completed + b.Failed + b.Cancelled
	b.CompletedAt = nil
	switch {
	case done == b.Total && b.Failed+b.Cancelled == 0:
		b.Status = BatchCompleted
	case done == b.Total && b.Completed == 0:
		b.Status = BatchFailed
	case done == b.Total:
		b.Status = BatchPartiallyFailed
	case done > 0 || b.Status != BatchPending:
		b.Status = BatchProcessing
	}
	if done == b.Total {
		b.CompletedAt = &now
	}
}

// NewBatchState counts the jobs a batch is written with; duplicates of live
// unique keys are not part of it.
func NewBatchState(id uuid.UUID, mode FailureMode, jobs []*job.Job, now time.Time) *BatchState {
	b := &BatchState{ID: id, FailureMode: mode, Status: BatchPending}
	for _, j := range jobs {
		if j.Duplicate {
			continue
		}
		b.Total++
		if p := b.counter(j.Status); p != nil {
			*p++
		}
	}
	b.settle(now)
	return b
}

// BatchTx is what a backend does in SQL, inside the transaction of a job
// transition, to keep batch counters true.
type BatchTx interface {
	// JobBatches returns the batch of each given job that has one.
	JobBatches(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]uuid.UUID, error)
	// LockBatch reads a batch row and locks it for the transaction, or
	// returns ErrNotFound.
	LockBatch(ctx context.Context, id uuid.UUID) (*BatchState, error)
	// SaveBatch writes status, counters (pending_jobs = Pending()) and
	// completed_at of a locked batch.
	SaveBatch(ctx context.Context, b *BatchState) error
	// CancelBatchJobs cancels the batch's pending jobs (not running ones)
	// and returns the changes, BatchID set.
	CancelBatchJobs(ctx context.Context, batchID uuid.UUID) ([]JobChange, error)
	// WorkflowBatchCounts counts the jobs of each batch of a workflow (its
	// batch steps) per status, for a workflow retry.
	WorkflowBatchCounts(ctx context.Context, workflowID uuid.UUID) (map[uuid.UUID]map[job.Status]int, error)
}

// batchJobName matches the step name of a job of a batch step ("resize[3]").
var batchJobName = regexp.MustCompile(`^(.+)\[(\d+)\]$`)

// GroupBatchResults turns the results of a batch step's jobs, keyed
// "<step>[i]", into one JSON array under "<step>" in index order, so a
// condition or an envelope sees the batch step as one parent whose result
// is the list of its jobs' results. Other keys pass through.
func GroupBatchResults(results map[string]json.RawMessage) (map[string]json.RawMessage, error) {
	type item struct {
		i      int
		result json.RawMessage
	}
	var groups map[string][]item
	out := make(map[string]json.RawMessage, len(results))
	for k, v := range results {
		m := batchJobName.FindStringSubmatch(k)
		if m == nil {
			out[k] = v
			continue
		}
		i, err := strconv.Atoi(m[2])
		if err != nil {
			return nil, fmt.Errorf("batch job name %q: %w", k, err)
		}
		if groups == nil {
			groups = map[string][]item{}
		}
		groups[m[1]] = append(groups[m[1]], item{i, v})
	}
	for step, items := range groups {
		slices.SortFunc(items, func(a, b item) int { return cmp.Compare(a.i, b.i) })
		list := make([]json.RawMessage, len(items))
		for k, it := range items {
			list[k] = it.result
			if len(list[k]) == 0 {
				list[k] = json.RawMessage("null")
			}
		}
		b, err := json.Marshal(list)
		if err != nil {
			return nil, fmt.Errorf("results of batch step %q: %w", step, err)
		}
		out[step] = b
	}
	return out, nil
}

// ParentResultsOf picks one job's parents' results out of what a backend
// read for several children, a batch step's jobs grouped into one list
// (GroupBatchResults); a job without parents has an empty map.
func ParentResultsOf(all map[uuid.UUID]map[string]json.RawMessage, jobID uuid.UUID) (map[string]json.RawMessage, error) {
	if out := all[jobID]; out != nil {
		return GroupBatchResults(out)
	}
	return map[string]json.RawMessage{}, nil
}
