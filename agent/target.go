package agent

import (
	"context"

	"github.com/hammerwork-go/hw-agent/dispatch"
	"github.com/hammerwork-go/hw-agent/job"
)

// RetryPolicyFor is the policy that spaces j's attempts: the job's own, else
// its queue's [[queue]].retry, else [retry]; unset fields take the defaults.
func (c Config) RetryPolicyFor(j *job.Job) job.RetryPolicy {
	p := c.Retry
	if j.RetryPolicy != nil {
		p = *j.RetryPolicy
	} else if q, ok := c.Queue(j.Queue); ok && q.Retry != nil {
		p = *q.Retry
	}
	return dispatch.WithDefaults(p)
}

// TargetFor says where and how j is delivered: the queue's handler_url or
// app.handler_url with {queue} filled in; the job's timeout, else the
// queue's request_timeout, else app.request_timeout; the queue's envelope
// setting, else app.envelope.
func (c Config) TargetFor(j *job.Job) dispatch.Target {
	q, _ := c.Queue(j.Queue)
	t := dispatch.Target{
		URL:            c.App.HandlerURL,
		Timeout:        c.App.RequestTimeout.D(),
		Envelope:       c.App.Envelope,
		SigningSecret:  c.App.SigningSecret,
		MaxResultBytes: c.App.MaxResultBytes,
	}
	if q.HandlerURL != "" {
		t.URL = q.HandlerURL
	}
	t.URL = dispatch.HandlerURL(t.URL, j.Queue)
	switch {
	case j.Timeout > 0:
		t.Timeout = j.Timeout.D()
	case q.RequestTimeout > 0:
		t.Timeout = q.RequestTimeout.D()
	}
	if q.Envelope != nil {
		t.Envelope = *q.Envelope
	}
	return t
}

// target is where and how j is delivered, with its parents' results when
// the envelope carries them. The results are read only for an envelope: a
// bare payload has nowhere to put them, and most jobs have no parents, so
// the common path costs no query.
func (a *Agent) target(ctx context.Context, j *job.Job) (dispatch.Target, error) {
	t := a.cfg.TargetFor(j)
	if !t.Envelope || len(j.DependsOn) == 0 {
		return t, nil
	}
	parents, err := a.store.ParentResults(ctx, j.ID)
	if err != nil {
		return t, err // names the job already
	}
	t.Parents = parents
	return t, nil
}
