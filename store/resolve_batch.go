package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/google/uuid"

	"github.com/hammerwork-go/hw-agent/job"
)

// Batch counters are kept by the same resolver as workflow counters: every
// change it counts is recorded, and before the workflows are saved the
// batches of those changes are locked (in id order), their counters moved,
// fail_fast batches cancel their pending jobs (whose changes are counted in
// turn), and each batch is settled and saved.

func (r *resolver) markEntry(changes []JobChange) {
	for _, c := range changes {
		r.entry[c.ID] = true
	}
}

// settleBatches applies every recorded change to its batch. It runs until
// no new change appears, since cancelling a fail_fast batch's jobs cancels
// their descendants, which may belong to other batches.
func (r *resolver) settleBatches(ctx context.Context) error {
	cancelled := map[uuid.UUID]bool{}
	for done := 0; done < len(r.changes); {
		round := slices.Clone(r.changes[done:])
		done = len(r.changes)
		if err := r.lookupBatches(ctx, round); err != nil {
			return err
		}
		if err := r.lockBatches(ctx, round); err != nil {
			return err
		}
		var failFast []uuid.UUID
		for _, c := range round {
			if c.BatchID == nil || r.batches[*c.BatchID] == nil {
				continue
			}
			b := r.batches[*c.BatchID]
			if p := b.counter(c.From); p != nil {
				*p--
			}
			if p := b.counter(c.To); p != nil {
				*p++
			}
			if c.To == job.StatusFailed && b.FailureMode == FailFast && !cancelled[b.ID] {
				cancelled[b.ID] = true
				failFast = append(failFast, b.ID)
			}
		}
		slices.SortFunc(failFast, compareIDs)
		for _, id := range failFast {
			changes, err := r.tx.CancelBatchJobs(ctx, id)
			if err != nil {
				return fmt.Errorf("cancel pending jobs of batch %s: %w", id, err)
			}
			for _, c := range changes {
				if err := r.count(ctx, c); err != nil {
					return err
				}
			}
			if err := r.applyFailures(ctx, nil, changes); err != nil {
				return err
			}
		}
	}
	ids := make([]uuid.UUID, 0, len(r.batches))
	for id, b := range r.batches {
		if b != nil {
			ids = append(ids, id)
		}
	}
	slices.SortFunc(ids, compareIDs)
	for _, id := range ids {
		b := r.batches[id]
		b.settle(r.now)
		if err := r.tx.SaveBatch(ctx, b); err != nil {
			return fmt.Errorf("save batch %s: %w", id, err)
		}
	}
	return nil
}

// lookupBatches fills BatchID of the changes resolution made itself.
func (r *resolver) lookupBatches(ctx context.Context, changes []JobChange) error {
	var ids []uuid.UUID
	for _, c := range changes {
		if c.BatchID == nil && !r.entry[c.ID] {
			ids = append(ids, c.ID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	batches, err := r.tx.JobBatches(ctx, ids)
	if err != nil {
		return fmt.Errorf("read batches of %d jobs: %w", len(ids), err)
	}
	for i, c := range changes {
		if b, ok := batches[c.ID]; ok && c.BatchID == nil {
			changes[i].BatchID = &b
		}
	}
	return nil
}

// lockBatches locks the batches of changes not locked yet, in id order. A
// batch whose row is gone is remembered as nil and left alone.
func (r *resolver) lockBatches(ctx context.Context, changes []JobChange) error {
	var ids []uuid.UUID
	for _, c := range changes {
		if c.BatchID == nil {
			continue
		}
		if _, ok := r.batches[*c.BatchID]; !ok {
			ids = append(ids, *c.BatchID)
		}
	}
	slices.SortFunc(ids, compareIDs)
	for _, id := range slices.Compact(ids) {
		b, err := r.tx.LockBatch(ctx, id)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("lock batch %s: %w", id, err)
		}
		r.batches[id] = b
	}
	return nil
}

// recountBatches sets the counters of a workflow's batches (its batch
// steps) from their jobs, after a workflow retry re-pended jobs in bulk.
func (r *resolver) recountBatches(ctx context.Context, workflowID uuid.UUID) error {
	counts, err := r.tx.WorkflowBatchCounts(ctx, workflowID)
	if err != nil {
		return fmt.Errorf("count batch jobs of workflow %s: %w", workflowID, err)
	}
	ids := make([]uuid.UUID, 0, len(counts))
	for id := range counts {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, compareIDs)
	for _, id := range ids {
		b, err := r.tx.LockBatch(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("lock batch %s: %w", id, err)
		}
		c := counts[id]
		b.Completed = c[job.StatusCompleted] + c[job.StatusSkipped]
		b.Failed = c[job.StatusFailed]
		b.Cancelled = c[job.StatusCancelled]
		r.batches[id] = b
	}
	return nil
}

func compareIDs(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) }
