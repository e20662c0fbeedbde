package workflow_test

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/hammerwork-go/hw-agent/workflow"
)

// fuzzParents are the results conditions are evaluated over: an object
// parent, a parent without a result and one whose name is no identifier.
var fuzzParents = map[string]json.RawMessage{
	"extract":   json.RawMessage(`{"rows": 12, "validation_status": "valid", "items": [1, 2, 3], "tags": {"a": true}, "name": "x"}`),
	"empty":     nil,
	"load-data": json.RawMessage(`[1, "two", null]`),
}

// compileProblem is the shape of a CEL problem CompileCondition reports at
// a place in the expression: the column, then what is wrong.
var compileProblem = regexp.MustCompile(`^column (\d+): \S`)

// FuzzCompileCondition: a rejected condition is one line that says what is
// wrong and, for a CEL problem with a place, a column inside the expression; a
// condition CompileCondition rejects is never one evaluation would accept;
// an accepted one evaluates to a bool or to an error naming the expression.
func FuzzCompileCondition(f *testing.F) {
	f.Fuzz(func(t *testing.T, expr string) {
		err := workflow.CompileCondition(expr)
		if err != nil {
			requireConditionError(t, expr, err)
			if strings.TrimSpace(expr) == "" {
				return
			}
			if _, evalErr := workflow.EvalCondition(expr, fuzzParents); evalErr == nil {
				t.Fatalf("CompileCondition(%q) rejects it (%v), but it evaluates", expr, err)
			}
			return
		}
		if _, err := workflow.EvalCondition(expr, fuzzParents); err != nil {
			if !strings.HasPrefix(err.Error(), "condition "+strconv.Quote(expr)) {
				t.Fatalf("EvalCondition(%q): error %q does not name the condition", expr, err)
			}
		}
	})
}

func requireConditionError(t *testing.T, expr string, err error) {
	t.Helper()
	msg := err.Error()
	switch {
	case strings.Contains(msg, "\n"):
		t.Fatalf("CompileCondition(%q): error %q spans several lines", expr, msg)
	case msg == "condition is empty":
		if strings.TrimSpace(expr) != "" {
			t.Fatalf("CompileCondition(%q) calls a non-empty condition empty", expr)
		}
	case strings.HasPrefix(msg, "condition must be a boolean expression, it has type "):
	default:
		for _, problem := range strings.Split(msg, "; ") {
			if strings.TrimSpace(problem) == "" || strings.HasPrefix(problem, "column 0") {
				t.Fatalf("CompileCondition(%q): problem %q of %q says nothing or points nowhere", expr, problem, msg)
			}
			m := compileProblem.FindStringSubmatch(problem)
			if m == nil {
				continue // about the whole expression, such as its size
			}
			if col, _ := strconv.Atoi(m[1]); col > utf8.RuneCountInString(expr)+1 {
				t.Fatalf("CompileCondition(%q): problem %q is at a column past the expression's end", expr, problem)
			}
		}
	}
}
