package postgres_test

import (
	"sync"
	"testing"
	"time"

	"github.com/hammerwork-go/hw-agent/internal/testkit"
	"github.com/hammerwork-go/hw-agent/store"
)

// BenchmarkEnqueueLeaseComplete measures the store's share of the hot path:
// enqueue in batches, then workers that lease a batch and complete it, as
// the agent's producers and completer do.
func BenchmarkEnqueueLeaseComplete(b *testing.B) {
	for _, bc := range []struct {
		name         string
		enqueueBatch int
		leaseBatch   int
		workers      int
	}{
		{"enqueue1000/lease50/workers2", 1000, 50, 2},
		{"enqueue10/lease10/workers4", 10, 10, 4},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := testkit.Postgres(b)
			ctx := b.Context()
			b.ResetTimer()
			for remaining := b.N; remaining > 0; remaining -= bc.enqueueBatch {
				jobs := make([]store.NewJob, min(remaining, bc.enqueueBatch))
				for i := range jobs {
					jobs[i] = store.NewJob{Queue: "bench", Payload: []byte(`{"user_id":42,"template":"welcome"}`)}
				}
				if _, err := s.Enqueue(ctx, store.EnqueueParams{Jobs: jobs, Now: time.Now()}); err != nil {
					b.Fatal(err)
				}
			}
			var wg sync.WaitGroup
			for range bc.workers {
				wg.Go(func() {
					for {
						now := time.Now()
						leased, err := s.Lease(ctx, store.LeaseParams{AgentID: "bench", Limit: bc.leaseBatch, Duration: time.Minute, Now: now})
						if err != nil {
							b.Error(err)
							return
						}
						if len(leased) == 0 {
							return
						}
						done := make([]store.Completion, len(leased))
						for i, j := range leased {
							done[i] = store.Completion{LeaseRef: store.LeaseRef{ID: j.ID, Token: j.LeaseToken}, Result: []byte(`{"ok":true}`)}
						}
						stale, err := s.Complete(ctx, store.CompleteParams{Completions: done, Now: time.Now()})
						if err != nil || len(stale) > 0 {
							b.Error(err, stale)
							return
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
		})
	}
}
