package workflow

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/hammerwork-go/hw-agent/job"
)

// Sentinels callers branch on with errors.Is. Every validation error also
// matches ErrInvalid, so the API can map all of them to 422 with one check.
var (
	ErrInvalid           = errors.New("invalid workflow")
	ErrEmpty             = errors.New("workflow has no jobs")
	ErrDuplicateStep     = errors.New("duplicate step name")
	ErrUnknownDependency = errors.New("dependency on an unknown step")
	ErrCycle             = errors.New("dependency cycle")
	// ErrMalformed marks a definition that is not a well-formed document of
	// the right shape: bad JSON or YAML syntax, a field of the wrong JSON
	// type, an unknown or repeated field. The API answers it with 400 where
	// other problems are 422; since it matches ErrInvalid too, check it first.
	ErrMalformed = errors.New("malformed workflow definition")
)

// Problem is one thing wrong with a definition. Path uses the names of the
// definition file ("jobs[2].depends_on[0]"), so a user can find the field
// whether the workflow came from a file, the API or the builder.
type Problem struct {
	Path    string `json:"path"`
	Message string `json:"message"`
	// Err is the sentinel this problem is an instance of; ErrInvalid when
	// no finer one applies.
	Err error `json:"-"`
}

func (p Problem) String() string {
	if p.Path == "" {
		return p.Message
	}
	return p.Path + ": " + p.Message
}

// ValidationError lists every problem found, not just the first, so one
// round trip is enough to fix a definition.
type ValidationError struct {
	Problems []Problem
}

// errorListed bounds how many problems Error spells out; Details has them all.
const errorListed = 10

func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("invalid workflow: ")
	for i, p := range e.Problems {
		if i == errorListed {
			fmt.Fprintf(&b, "; and %d more", len(e.Problems)-errorListed)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p.String())
	}
	return b.String()
}

// Unwrap makes errors.Is true for ErrInvalid and for the sentinel of every
// problem (ErrCycle, ErrUnknownDependency, ...).
func (e *ValidationError) Unwrap() []error {
	errs := []error{ErrInvalid}
	for _, p := range e.Problems {
		if p.Err != nil && !containsErr(errs, p.Err) {
			errs = append(errs, p.Err)
		}
	}
	return errs
}

func containsErr(errs []error, err error) bool {
	for _, e := range errs {
		if e == err {
			return true
		}
	}
	return false
}

// Details is the list of {path, message} the API puts in a 422's details.
func (e *ValidationError) Details() any {
	out := make([]Problem, len(e.Problems))
	copy(out, e.Problems)
	return out
}

// maxProblems bounds the report for a huge broken definition (10,000 steps
// all missing a queue): the first ones are enough to act on.
const maxProblems = 100

// problems collects Problems up to maxProblems.
type problems struct {
	list      []Problem
	truncated int
}

func (ps *problems) add(err error, path, format string, a ...any) {
	if len(ps.list) >= maxProblems {
		ps.truncated++
		return
	}
	ps.list = append(ps.list, Problem{Path: path, Message: fmt.Sprintf(format, a...), Err: err})
}

func (ps *problems) err() error {
	if len(ps.list) == 0 {
		return nil
	}
	list := ps.list
	if ps.truncated > 0 {
		list = append(list, Problem{Message: fmt.Sprintf("%d more problems not listed", ps.truncated), Err: ErrInvalid})
	}
	return &ValidationError{Problems: list}
}

// Validate is the package function form of Workflow.Validate.
func Validate(w Workflow) error { return w.Validate() }

// Validate checks a definition before anything is written: it returns nil
// or a *ValidationError naming every offending field and job. It runs in
// O(steps + edges) plus one CEL parse per condition, so a 10,000-step
// definition validates as fast as it decodes.
func (w Workflow) Validate() error {
	var ps problems
	w.validateHeader(&ps)
	if len(w.Steps) == 0 {
		ps.add(ErrEmpty, "jobs", "a workflow needs at least one job")
		return ps.err()
	}
	index := make(map[string]int, len(w.Steps))
	for i, s := range w.Steps {
		path := stepPath(i)
		switch prev, dup := index[s.Name]; {
		case s.Name == "":
			ps.add(ErrInvalid, path+".name", "is required")
		case hasControl(s.Name):
			ps.add(ErrInvalid, path+".name", "%q holds a control character; it is sent to the app in the Hammerwork-Step header, which cannot carry one", s.Name)
		case strings.ContainsAny(s.Name, "[]"):
			ps.add(ErrInvalid, path+".name", "%q: '[' and ']' are reserved for the jobs of batch steps", s.Name)
		case dup:
			ps.add(ErrDuplicateStep, path+".name", "duplicate step name %q (also %s)", s.Name, stepPath(prev))
		default:
			index[s.Name] = i
		}
	}
	for i, s := range w.Steps {
		validateStep(&ps, i, s, index)
	}
	findCycles(&ps, w.Steps, index)
	return ps.err()
}

func stepPath(i int) string { return "jobs[" + strconv.Itoa(i) + "]" }

func (w Workflow) validateHeader(ps *problems) {
	switch {
	case strings.TrimSpace(w.Name) == "":
		ps.add(ErrInvalid, "name", "is required")
	case hasControl(w.Name):
		ps.add(ErrInvalid, "name", "%q holds a control character; it is sent to the app in the Hammerwork-Workflow-Name header, which cannot carry one", w.Name)
	}
	if hasControl(w.CorrelationID) {
		ps.add(ErrInvalid, "correlation_id", "%q holds a control character; it is sent to the app in the Hammerwork-Correlation-Id header, which cannot carry one", w.CorrelationID)
	}
	if _, err := ParseFailurePolicy(string(w.FailurePolicy)); err != nil {
		ps.add(ErrInvalid, "failure_policy", "%v", err)
	}
	validatePriority(ps, "priority", w.Priority)
	if w.Timeout < 0 {
		ps.add(ErrInvalid, "timeout", "must not be negative")
	}
	if w.TraceID != "" && !ValidTraceID(w.TraceID) {
		ps.add(ErrInvalid, "trace_id", "%q is not a trace id (32 lowercase hex digits, not all zero)", w.TraceID)
	}
	if len(w.Metadata) > 0 && !json.Valid(w.Metadata) {
		ps.add(ErrInvalid, "metadata", "is not valid JSON")
	}
}

// hasControl reports a control character (CR, LF, tab, NUL, DEL, C1):
// net/http refuses a header value holding one, so a name that becomes a
// request header must not.
func hasControl(s string) bool { return strings.IndexFunc(s, unicode.IsControl) >= 0 }

func validatePriority(ps *problems, path string, p *job.Priority) {
	if p != nil && (*p < job.PriorityBackground || *p > job.PriorityCritical) {
		ps.add(ErrInvalid, path, "%d is out of range 0..4", *p)
	}
}

// ValidTraceID reports whether s is a W3C trace id: 32 lowercase hex digits,
// not all zero (the all-zero id means "no trace" in traceparent).
func ValidTraceID(s string) bool {
	if len(s) != 32 {
		return false
	}
	zero := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '0':
		case c >= '1' && c <= '9', c >= 'a' && c <= 'f':
			zero = false
		default:
			return false
		}
	}
	return !zero
}

func validateStep(ps *problems, i int, s Step, index map[string]int) {
	path := stepPath(i)
	if strings.TrimSpace(s.Queue) == "" {
		ps.add(ErrInvalid, path+".queue", "is required")
	}
	if len(s.Payload) > 0 && !json.Valid(s.Payload) {
		ps.add(ErrInvalid, path+".payload", "is not valid JSON")
	}
	switch {
	case s.Batch == nil:
	case len(s.Payload) > 0:
		ps.add(ErrInvalid, path+".batch", "give payload or batch, not both")
	case len(s.Batch) == 0:
		ps.add(ErrInvalid, path+".batch", "needs at least one payload")
	case len(s.Batch) > MaxBatchSteps:
		ps.add(ErrInvalid, path+".batch", "holds %d payloads, at most %d", len(s.Batch), MaxBatchSteps)
	}
	for j, p := range s.Batch {
		if len(p) > 0 && !json.Valid(p) {
			ps.add(ErrInvalid, path+".batch["+strconv.Itoa(j)+"]", "is not valid JSON")
		}
	}
	if s.MaxAttempts < 0 {
		ps.add(ErrInvalid, path+".max_attempts", "%d must be at least 1 (0 means the default)", s.MaxAttempts)
	}
	for _, d := range []struct {
		name string
		v    job.Duration
	}{{"timeout", s.Timeout}, {"delay", s.Delay}, {"result_ttl", s.ResultTTL}} {
		if d.v < 0 {
			ps.add(ErrInvalid, path+"."+d.name, "must not be negative")
		}
	}
	validatePriority(ps, path+".priority", s.Priority)
	if s.Retry != nil {
		if err := s.Retry.Validate(); err != nil {
			ps.add(ErrInvalid, path+".retry", "%v", err)
		}
	}
	seen := make(map[string]bool, len(s.DependsOn))
	for j, d := range s.DependsOn {
		dpath := path + ".depends_on[" + strconv.Itoa(j) + "]"
		_, known := index[d]
		switch {
		case d == "":
			ps.add(ErrInvalid, dpath, "is empty (want a step name)")
		case seen[d]:
			ps.add(ErrInvalid, dpath, "step %q is listed twice", d)
		case !known:
			ps.add(ErrUnknownDependency, dpath, "unknown step %q (a dependency of %q)", d, s.Name)
		}
		seen[d] = true
	}
	if s.Condition != "" {
		if len(s.DependsOn) == 0 {
			ps.add(ErrInvalid, path+".condition", "needs depends_on: a condition is evaluated over the parents' results and a step without parents has none")
		} else if err := CompileCondition(s.Condition); err != nil {
			ps.add(ErrInvalid, path+".condition", "%v", err)
		}
	}
}

// maxCycles bounds how many cycles are reported; one is enough to act on
// and a dense graph can have very many.
const maxCycles = 10

// findCycles runs one depth-first search with colours over the parent ->
// child edges (O(V+E), iterative so a 10,000-step chain needs no deep Go
// stack) and reports each back edge as the cycle it closes, named in
// execution order and starting at the step defined first:
// "cycle: a -> b -> c -> a". Unknown dependencies are skipped here; they
// are reported on their own.
func findCycles(ps *problems, steps []Step, index map[string]int) {
	children := make([][]int, len(steps))
	for c, s := range steps {
		if index[s.Name] != c {
			continue // a duplicate: reported already, and its edges would be ambiguous
		}
		for _, d := range s.DependsOn {
			if p, ok := index[d]; ok {
				children[p] = append(children[p], c)
			}
		}
	}
	const (
		white = iota
		grey
		black
	)
	colour := make([]uint8, len(steps))
	pos := make([]int, len(steps)) // position on the DFS path while grey
	type frame struct{ node, next int }
	var stack []frame
	found := 0
	for root := range steps {
		if colour[root] != white {
			continue
		}
		colour[root], pos[root] = grey, 0
		stack = append(stack[:0], frame{node: root})
		for len(stack) > 0 {
			top := &stack[len(stack)-1]
			if top.next == len(children[top.node]) {
				colour[top.node] = black
				stack = stack[:len(stack)-1]
				continue
			}
			child := children[top.node][top.next]
			top.next++
			switch colour[child] {
			case white:
				colour[child], pos[child] = grey, len(stack)
				stack = append(stack, frame{node: child})
			case grey:
				if found < maxCycles {
					cycle := make([]int, 0, len(stack)-pos[child])
					for _, f := range stack[pos[child]:] {
						cycle = append(cycle, f.node)
					}
					reportCycle(ps, steps, cycle)
				}
				found++
			}
		}
	}
	if found > maxCycles {
		ps.add(ErrCycle, "jobs", "%d more cycles not listed", found-maxCycles)
	}
}

// reportCycle names the cycle (nodes in parent -> child order, the last one
// a parent of the first) from the step defined first, and points the path
// at the depends_on entry that closes it.
func reportCycle(ps *problems, steps []Step, cycle []int) {
	first := 0
	for i, n := range cycle {
		if n < cycle[first] {
			first = i
		}
	}
	names := make([]string, 0, len(cycle)+1)
	for i := range cycle {
		names = append(names, steps[cycle[(first+i)%len(cycle)]].Name)
	}
	names = append(names, names[0])
	head := cycle[first]
	closing := names[len(names)-2]
	path := stepPath(head) + ".depends_on"
	for j, d := range steps[head].DependsOn {
		if d == closing {
			path += "[" + strconv.Itoa(j) + "]"
			break
		}
	}
	ps.add(ErrCycle, path, "cycle: %s", strings.Join(shortenCycle(names), " -> "))
}

// cycleShown is how many names a long cycle keeps at each end: a cycle
// through 10,000 steps is named by its ends, not spelled out.
const cycleShown = 10

func shortenCycle(names []string) []string {
	if len(names) <= 2*cycleShown+1 {
		return names
	}
	out := slices.Clone(names[:cycleShown])
	out = append(out, fmt.Sprintf("... %d more ...", len(names)-2*cycleShown))
	return append(out, names[len(names)-cycleShown:]...)
}
