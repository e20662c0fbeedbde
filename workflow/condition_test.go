package workflow_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/workflow"
)

type results = map[string]json.RawMessage

func TestEvalCondition(t *testing.T) {
	t.Parallel()
	validate := results{"validate_input": json.RawMessage(`{"validation_status": "valid", "errors": []}`)}
	extract := results{"extract": json.RawMessage(`{"rows": 12, "count": 3, "row-count": 12, "parents": "shadow?"}`)}
	two := results{
		"fetch_data":  json.RawMessage(`{"rows": 5, "source": "api", "env": "fetch"}`),
		"load_config": json.RawMessage(`{"env": "prod", "limit": 10}`),
	}
	tests := []struct {
		name    string
		expr    string
		parents results
		want    bool
	}{
		{"EmptyConditionAlwaysRuns", " ", nil, true},
		{"GuideValidPath", "validation_status == 'valid'", validate, true},
		{"GuideInvalidPath", "validation_status == 'invalid'", validate, false},
		{"IntegerResultComparesWithIntLiteral", "rows > 0", extract, true},
		{"IntegerResultEqualsIntLiteral", "count == 3", extract, true},
		{"IntegerResultNotEqual", "count != 3", extract, false},
		{"ZeroRows", "rows > 0", results{"extract": json.RawMessage(`{"rows": 0}`)}, false},
		{"ParentsReachesOneResult", "parents.extract.rows >= 10", extract, true},
		{"ParentsIndexReachesNonIdentifierKeys", "parents.extract['row-count'] == 12", extract, true},
		{"ResultKeyNamedParentsDoesNotShadow", "parents.extract.parents == 'shadow?'", extract, true},
		{"SeveralParents", "rows < limit && source == 'api'", two, true},
		{"SameKeyLaterStepNameWins", "env == 'prod'", two, true},
		{"EarlierParentStillReachable", "parents.fetch_data.env == 'fetch'", two, true},
		{"NilResultIsNull", "parents.extract == null", results{"extract": nil}, true},
		{"ScalarResult", "parents.count_rows == 42", results{"count_rows": json.RawMessage(`42`)}, true},
		{"Macros", "parents.validate_input.errors.size() == 0 && has(parents.validate_input.validation_status)", validate, true},
		{"Comprehension", "[1, 2, 3].exists(x, x == count)", extract, true},
		{"OnePassOverALargeList", "items.all(x, x >= 0 && x < 10000)", results{"big": bigList(10_000)}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := workflow.EvalCondition(tc.expr, tc.parents)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestEvalConditionErrors(t *testing.T) {
	t.Parallel()
	extract := results{"extract": json.RawMessage(`{"rows": 12}`)}
	tests := []struct {
		name    string
		expr    string
		parents results
		message string
	}{
		{"MissingVariable", "missing > 1", extract, `condition "missing > 1": column 1: undeclared reference to 'missing' (variables: rows, parents)`},
		{"NonBool", "rows", extract, `condition "rows" evaluated to double, want bool`},
		{"NonBoolString", "parents.extract.rows > 1 ? 'yes' : 'no'", extract, "condition must be a boolean expression, it has type string"},
		{"UnknownParent", "parents.nope.rows > 1", extract, "no such key: nope"},
		{"SyntaxError", "rows >", extract, "Syntax error"},
		{"ResultNotJSON", "rows > 1", results{"extract": json.RawMessage(`{`)}, `result of parent "extract" is not valid JSON`},
		{"NoParentsNoVariables", "rows > 0", nil, "undeclared reference to 'rows'"},
		{"NestedComprehension", "items.all(x, items.all(y, x + y >= 0.0))", results{"big": bigList(10)}, "nesting"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := workflow.EvalCondition(tc.expr, tc.parents)
			require.ErrorContains(t, err, tc.message)
		})
	}
}

// bigList is a result {"items": [0, 1, ..., n-1]}.
func bigList(n int) json.RawMessage {
	items := make([]int, n)
	for i := range items {
		items[i] = i
	}
	b, _ := json.Marshal(map[string]any{"items": items})
	return b
}

func TestCompileCondition(t *testing.T) {
	t.Parallel()
	tests := []struct {
		expr    string
		message string // empty: valid
	}{
		{"validation_status == 'valid'", ""},
		{"rows > 0", ""},
		{"parents.extract.rows >= 10", ""},
		{"[1, 2].exists(x, x > rows)", ""},
		{"has(parents.a.b) && size(items) > 0", ""},
		{"rows", ""}, // dyn: only the results can tell
		{"rows >", "Syntax error"},
		{"", "condition is empty"},
		{"frobnicate(rows)", "undeclared reference to 'frobnicate'"},
		{"1 + 2", "condition must be a boolean expression, it has type int"},
		{"'valid'", "it has type string"},
		{"items.exists(x, x.tags.exists(t, t == 'a'))", "nesting"},
		{strings.Repeat("a || ", 1000) + "a", "exceeds"},
	}
	for _, tc := range tests {
		t.Run(tc.expr, func(t *testing.T) {
			t.Parallel()
			err := workflow.CompileCondition(tc.expr)
			if tc.message == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.message)
			require.NotContains(t, err.Error(), "\n", "condition errors are one line")
		})
	}
}

// TestEvalConditionConcurrent shares cached programs across goroutines;
// run with -race.
func TestEvalConditionConcurrent(t *testing.T) {
	t.Parallel()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				parents := results{"p": json.RawMessage(fmt.Sprintf(`{"n": %d, "k%d": true}`, i, i%3))}
				ok, err := workflow.EvalCondition("n >= 0 && parents.p.n == n", parents)
				if err != nil || !ok {
					t.Errorf("goroutine %d, i %d: %v %v", g, i, ok, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
