package testkit

import (
	"context"
	"testing"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
)

// EnqueueNoop enqueues n jobs with an empty object payload and three
// attempts on queue, the shape the lease and maintenance tests lease and
// rescue, and returns them as stored (none for n = 0).
func EnqueueNoop(t testing.TB, s store.Enqueuer, queue string, n int) []*job.Job {
	t.Helper()
	if n == 0 {
		return nil
	}
	news := make([]store.NewJob, n)
	for i := range news {
		news[i] = store.NewJob{Queue: queue, Payload: []byte(`{}`), MaxAttempts: 3}
	}
	jobs, err := s.Enqueue(context.Background(), store.EnqueueParams{Jobs: news})
	if err != nil {
		t.Fatalf("testkit: enqueue %d jobs on %q: %v", n, queue, err)
	}
	return jobs
}
