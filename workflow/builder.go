package workflow

import (
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/hammerwork-go/hw-agent/job"
)

// Builder assembles a Workflow in stages, as the README's Workflows section describes: Add and
// AddParallel put steps into the current stage; Then makes its step depend
// on every step of the current stage and starts a new stage holding only
// it. So New("etl").Add(a).Then(b).Then(c) is the chain a -> b -> c (2
// edges) and AddParallel(r1, r2, r3, r4).Then(summary) is a barrier (4
// edges). DependsOn adds explicit edges on top. Nothing is checked until
// Build, which validates like Validate, so the chain reads without error
// handling at each call.
type Builder struct {
	w        Workflow
	stage    []string
	explicit []explicitEdges
	problems problems
}

// explicitEdges is one DependsOn call, applied at Build so it may name a
// step added later.
type explicitEdges struct {
	step    string
	parents []string
}

// New starts a workflow with a name; its first Add starts the first stage.
func New(name string) *Builder {
	return &Builder{w: Workflow{Name: name}}
}

// Add puts a step into the current stage, with no edges beyond its own
// DependsOn.
func (b *Builder) Add(step Step) *Builder {
	b.w.Steps = append(b.w.Steps, cloneStep(step))
	b.stage = append(b.stage, step.Name)
	return b
}

// AddParallel puts several steps into the current stage; they run side by
// side, and a following Then waits for all of them.
func (b *Builder) AddParallel(steps ...Step) *Builder {
	for _, s := range steps {
		b.Add(s)
	}
	return b
}

// Then makes step depend on every step of the current stage, then starts a
// new stage holding only it. On an empty builder it is a plain Add.
func (b *Builder) Then(step Step) *Builder {
	s := cloneStep(step)
	for _, parent := range b.stage {
		if !slices.Contains(s.DependsOn, parent) {
			s.DependsOn = append(s.DependsOn, parent)
		}
	}
	b.w.Steps = append(b.w.Steps, s)
	b.stage = []string{s.Name}
	return b
}

// DependsOn adds edges parent -> step for each parent, on top of the stage
// edges. step may be added before or after this call; Build reports it if
// it never is.
func (b *Builder) DependsOn(step string, parents ...string) *Builder {
	b.explicit = append(b.explicit, explicitEdges{step: step, parents: slices.Clone(parents)})
	return b
}

// WithFailurePolicy sets what a failed job does to the workflow.
func (b *Builder) WithFailurePolicy(p FailurePolicy) *Builder {
	b.w.FailurePolicy = p
	return b
}

// WithDescription sets the workflow's description.
func (b *Builder) WithDescription(d string) *Builder {
	b.w.Description = d
	return b
}

// WithTimeout bounds the whole workflow: when it passes, what is left is
// cancelled and the workflow fails.
func (b *Builder) WithTimeout(d time.Duration) *Builder {
	b.w.Timeout = job.Duration(d)
	return b
}

// WithPriority sets the default priority of the workflow's jobs.
func (b *Builder) WithPriority(p job.Priority) *Builder {
	b.w.Priority = &p
	return b
}

// WithTraceID stamps a W3C trace id on the workflow and its jobs.
func (b *Builder) WithTraceID(id string) *Builder {
	b.w.TraceID = id
	return b
}

// WithCorrelationID stamps a business correlation id on the workflow and its jobs.
func (b *Builder) WithCorrelationID(id string) *Builder {
	b.w.CorrelationID = id
	return b
}

// WithMetadata sets free-form metadata: a json.RawMessage or []byte is taken
// as JSON text, anything else (a map, a struct) is marshalled. A value that
// does not marshal is reported by Build.
func (b *Builder) WithMetadata(v any) *Builder {
	switch m := v.(type) {
	case nil:
		b.w.Metadata = nil
	case json.RawMessage:
		b.w.Metadata = slices.Clone(m)
	case []byte:
		b.w.Metadata = slices.Clone(m)
	default:
		raw, err := json.Marshal(m)
		if err != nil {
			b.problems.add(ErrInvalid, "metadata", "cannot encode as JSON: %v", err)
			return b
		}
		b.w.Metadata = raw
	}
	return b
}

// Build applies the explicit edges and validates. It returns a copy, so
// the builder may go on to build variants. On error the Workflow is zero
// and the error is a *ValidationError.
func (b *Builder) Build() (Workflow, error) {
	ps := problems{list: slices.Clone(b.problems.list), truncated: b.problems.truncated}
	w := b.w
	w.Metadata = slices.Clone(b.w.Metadata)
	w.Steps = make([]Step, len(b.w.Steps))
	index := make(map[string]int, len(b.w.Steps))
	for i, s := range b.w.Steps {
		w.Steps[i] = cloneStep(s)
		if _, dup := index[s.Name]; !dup {
			index[s.Name] = i
		}
	}
	for _, e := range b.explicit {
		i, ok := index[e.step]
		if !ok {
			ps.add(ErrUnknownDependency, "jobs", "DependsOn(%q, ...): no step named %q was added", e.step, e.step)
			continue
		}
		for _, p := range e.parents {
			if !slices.Contains(w.Steps[i].DependsOn, p) {
				w.Steps[i].DependsOn = append(w.Steps[i].DependsOn, p)
			}
		}
	}
	if err := w.Validate(); err != nil {
		var ve *ValidationError
		if !errors.As(err, &ve) {
			return Workflow{}, err
		}
		for _, p := range ve.Problems {
			ps.add(p.Err, p.Path, "%s", p.Message)
		}
	}
	if err := ps.err(); err != nil {
		return Workflow{}, err
	}
	return w, nil
}

// cloneStep copies the slices a caller could still mutate after handing the
// step over.
func cloneStep(s Step) Step {
	s.Payload = slices.Clone(s.Payload)
	s.DependsOn = slices.Clone(s.DependsOn)
	if s.Batch != nil {
		batch := make([]json.RawMessage, len(s.Batch))
		for i, p := range s.Batch {
			batch[i] = slices.Clone(p)
		}
		s.Batch = batch
	}
	if s.Priority != nil {
		p := *s.Priority
		s.Priority = &p
	}
	if s.Retry != nil {
		r := *s.Retry
		if r.Jitter != nil {
			j := *r.Jitter
			r.Jitter = &j
		}
		s.Retry = &r
	}
	return s
}
