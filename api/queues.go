package api

import (
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
)

// QueueView is one queue as GET /v1/queues and `hw-agent queue list
// --output json` show it.
type QueueView struct {
	Name     string     `json:"name"`
	Paused   bool       `json:"paused"`
	PausedAt *time.Time `json:"paused_at,omitempty"`
	PausedBy string     `json:"paused_by,omitempty"`
	// Depth counts the queue's jobs by status; every status is present.
	Depth map[job.Status]int64 `json:"depth"`
	// OldestPendingAgeSeconds is how long the longest-waiting due job has
	// waited since its scheduled_at; 0 when none waits.
	OldestPendingAgeSeconds float64 `json:"oldest_pending_age_seconds"`
	// ThroughputPerMinute is the number of jobs completed in the last minute.
	ThroughputPerMinute int64 `json:"throughput_per_minute"`
}

// NewQueueView renders what the store knows of a queue at now.
func NewQueueView(q store.QueueInfo, now time.Time) QueueView {
	v := QueueView{
		Name: q.Name, Paused: q.Paused, PausedAt: q.PausedAt, PausedBy: q.PausedBy,
		Depth: q.Depth, ThroughputPerMinute: q.CompletedLastMinute,
	}
	if q.OldestPendingAt != nil {
		v.OldestPendingAgeSeconds = max(now.Sub(*q.OldestPendingAt).Seconds(), 0)
	}
	return v
}

// queueList is the body of GET /v1/queues.
type queueList struct {
	Queues []QueueView `json:"queues"`
}

func (s *Server) listQueues(c echo.Context) error {
	now, err := s.clock(c.Request().Context())
	if err != nil {
		return err
	}
	infos, err := s.p.Store.Queues(c.Request().Context(), store.QueuesParams{Now: s.now()})
	if err != nil {
		return fmt.Errorf("list queues: %w", err)
	}
	out := queueList{Queues: make([]QueueView, len(infos))}
	for i, q := range infos {
		out.Queues[i] = NewQueueView(q, now)
	}
	return c.JSON(http.StatusOK, out)
}

// getQueue answers 404 for a queue with neither jobs nor a pause: as far as
// the database knows, no such queue exists.
func (s *Server) getQueue(c echo.Context) error {
	name, err := queueParam(c)
	if err != nil {
		return err
	}
	v, found, err := s.queueView(c, name)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("queue %q has no jobs and no pause: %w", name, store.ErrNotFound)
	}
	return c.JSON(http.StatusOK, v)
}

// pauseQueue stops every agent sharing the database from leasing the
// queue; jobs in flight finish. A queue without jobs can be paused ahead of
// them, and pausing twice is not an error.
func (s *Server) pauseQueue(c echo.Context) error {
	name, err := queueParam(c)
	if err != nil {
		return err
	}
	if err := s.p.Store.PauseQueue(c.Request().Context(), store.PauseQueueParams{Queue: name, By: "api", Now: s.now()}); err != nil {
		return fmt.Errorf("pause queue %q: %w", name, err)
	}
	s.log.Info("queue paused through the API", "queue", name)
	return s.answerQueue(c, name)
}

// resumeQueue lifts a pause; resuming a queue that is not paused is not an
// error either, so retried requests are harmless.
func (s *Server) resumeQueue(c echo.Context) error {
	name, err := queueParam(c)
	if err != nil {
		return err
	}
	if err := s.p.Store.ResumeQueue(c.Request().Context(), store.ResumeQueueParams{Queue: name}); err != nil {
		return fmt.Errorf("resume queue %q: %w", name, err)
	}
	s.wake(name)
	s.log.Info("queue resumed through the API", "queue", name)
	return s.answerQueue(c, name)
}

// answerQueue writes the queue's view after a pause or resume; a resumed
// queue without jobs is still named, with zero depth.
func (s *Server) answerQueue(c echo.Context, name string) error {
	v, found, err := s.queueView(c, name)
	if err != nil {
		return err
	}
	if !found {
		v = NewQueueView(store.MergeQueues([]store.QueueInfo{{Name: name}}, nil, "")[0], s.now())
	}
	return c.JSON(http.StatusOK, v)
}

func (s *Server) queueView(c echo.Context, name string) (QueueView, bool, error) {
	now, err := s.clock(c.Request().Context())
	if err != nil {
		return QueueView{}, false, err
	}
	infos, err := s.p.Store.Queues(c.Request().Context(), store.QueuesParams{Queue: name, Now: s.now()})
	if err != nil {
		return QueueView{}, false, fmt.Errorf("describe queue %q: %w", name, err)
	}
	if len(infos) == 0 {
		return QueueView{}, false, nil
	}
	return NewQueueView(infos[0], now), true, nil
}

// queueParam is the :name of a queue route, which must be a valid queue name
// (422 otherwise: the request is well formed but names nothing that can be).
func queueParam(c echo.Context) (string, error) {
	name := c.Param("name")
	if err := store.ValidateQueueName(name); err != nil {
		return "", err
	}
	return name, nil
}
