package workflow

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode"

	"github.com/google/cel-go/cel"
	celast "github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/types"
)

// conditionMaxLen bounds an expression: a condition is a short predicate,
// and a bound keeps parsing cheap for a request-supplied definition.
const conditionMaxLen = 4096

// conditionNesting forbids comprehensions inside comprehensions
// (`items.all(x, items.exists(y, ...))`): one level keeps an evaluation
// linear in the size of the results, so a condition cannot stall the
// transaction that resolves its job. A runtime cost limit would do the
// same more loosely, but cel-go's cost tracker is itself quadratic in the
// number of comprehension steps.
const conditionNesting = 1

// parentsVar is the variable that holds every parent's result by step name.
const parentsVar = "parents"

var (
	baseEnvOnce sync.Once
	baseEnv     *cel.Env
	baseEnvErr  error
)

func conditionEnv() (*cel.Env, error) {
	baseEnvOnce.Do(func() {
		baseEnv, baseEnvErr = cel.NewEnv(
			cel.CrossTypeNumericComparisons(true),
			cel.ParserExpressionSizeLimit(conditionMaxLen),
			cel.ASTValidators(cel.ValidateComprehensionNestingLimit(conditionNesting)),
			cel.Variable(parentsVar, cel.MapType(cel.StringType, cel.DynType)),
		)
	})
	return baseEnv, baseEnvErr
}

// CompileCondition checks a condition without knowing the parents' results:
// it parses the expression, then type-checks it with every identifier it
// mentions declared as dyn. That rejects syntax errors, unknown functions
// and expressions that can never be a bool ("rows + 1"), while a variable
// name can only be judged against real results, at evaluation.
func CompileCondition(expr string) error {
	env, err := conditionEnv()
	if err != nil {
		return fmt.Errorf("condition environment: %w", err)
	}
	if strings.TrimSpace(expr) == "" {
		return fmt.Errorf("condition is empty")
	}
	parsed, iss := env.Parse(expr)
	if iss.Err() != nil {
		return issuesError(iss)
	}
	var decls []cel.EnvOption
	seen := map[string]bool{parentsVar: true}
	for _, e := range celast.MatchDescendants(celast.NavigateAST(parsed.NativeRep()), celast.KindMatcher(celast.IdentKind)) {
		name := e.AsIdent()
		// "@result"-style names are accumulators the macros introduce;
		// the checker declares those itself.
		if !seen[name] && !strings.HasPrefix(name, "@") {
			seen[name] = true
			decls = append(decls, cel.Variable(name, cel.DynType))
		}
	}
	lenient, err := env.Extend(decls...)
	if err != nil {
		return fmt.Errorf("declare condition variables: %w", err)
	}
	checked, iss := lenient.Check(parsed)
	if iss.Err() != nil {
		return issuesError(iss)
	}
	return boolOutput(checked.OutputType())
}

func boolOutput(t *cel.Type) error {
	switch t.Kind() {
	case types.BoolKind, types.DynKind, types.AnyKind:
		return nil
	}
	return fmt.Errorf("condition must be a boolean expression, it has type %s", t)
}

// issuesError flattens CEL's multi-line report (with a caret drawing) into
// one line per problem, since the text ends up in a job's error_message and
// in a JSON problem list.
func issuesError(iss *cel.Issues) error {
	msgs := make([]string, 0, len(iss.Errors()))
	for _, e := range iss.Errors() {
		// Conditions have no container, so CEL's note about it is noise.
		msg := strings.ReplaceAll(e.Message, " (in container '')", "")
		// A problem with the whole expression (its size) has no location.
		if col := e.Location.Column(); col >= 0 {
			msg = fmt.Sprintf("column %d: %s", col+1, msg)
		}
		msgs = append(msgs, escapeControls(msg))
	}
	if len(msgs) == 0 {
		return iss.Err()
	}
	return errors.New(strings.Join(msgs, "; "))
}

// escapeControls writes the control characters of a message (a newline in
// a quoted token of the expression) as Go escapes, keeping it on one line.
func escapeControls(msg string) string {
	if !strings.ContainsFunc(msg, unicode.IsControl) {
		return msg
	}
	var b strings.Builder
	for _, r := range msg {
		if unicode.IsControl(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// celIdent matches the names CEL accepts as a plain identifier.
var celIdent = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// celReserved are words CEL's grammar keeps for itself; a result key spelled
// like one cannot be a variable.
var celReserved = map[string]bool{
	"true": true, "false": true, "null": true, "in": true, "as": true, "break": true, "const": true,
	"continue": true, "else": true, "for": true, "function": true, "if": true, "import": true,
	"let": true, "loop": true, "package": true, "namespace": true, "return": true, "var": true,
	"void": true, "while": true,
}

// EvalCondition evaluates a condition (a CEL expression) over the results
// of a step's parents, keyed by step name (a nil or absent result is null).
// An empty expression is true. A result that is not a bool is an error
// naming its type, as is any evaluation error; the caller fails the job with
// the error text.
//
// Variables: each top-level key of each parent's JSON object result is a
// variable, so hammerwork's `validation_status == 'valid'` works as written.
// When two parents' results have the same key, the parent whose step name
// sorts last wins (parents are applied in sorted order, later overwrites).
// `parents.<step_name>` is one parent's whole result (null when it has none),
// whatever its shape; `parents['load-data']` reaches names that are not CEL
// identifiers. A result key named "parents", or one that is not a CEL
// identifier ("row-count", "in"), is reachable only through parents.
//
// Types: results are decoded from JSON, so every number is a CEL double.
// The environment enables cross-type numeric comparisons and CEL equality
// is numeric across int and double, so `rows > 0` and `count == 3` work for
// a result of {"rows": 12, "count": 3}.
//
// Variables are declared per evaluation from the keys actually present, each
// as dyn: a reference to a key no parent returned fails the evaluation with
// "undeclared reference", and so fails the job, rather than silently
// comparing null. Compiled programs are cached per (expression, variable
// names).
func EvalCondition(expr string, parents map[string]json.RawMessage) (bool, error) {
	if strings.TrimSpace(expr) == "" {
		return true, nil // no condition: the step always runs
	}
	vars, err := conditionVars(parents)
	if err != nil {
		return false, err
	}
	names := make([]string, 0, len(vars))
	for k := range vars {
		if k != parentsVar {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	prg, err := programs.get(expr, names)
	if err != nil {
		return false, fmt.Errorf("condition %q: %w", expr, err)
	}
	out, _, err := prg.Eval(vars)
	if err != nil {
		return false, fmt.Errorf("condition %q: %w", expr, err)
	}
	b, ok := out.Value().(bool)
	if !ok || out.Type() != types.BoolType {
		return false, fmt.Errorf("condition %q evaluated to %s, want bool", expr, out.Type().TypeName())
	}
	return b, nil
}

// conditionVars decodes every result and builds the activation: the merged
// top-level keys plus "parents".
func conditionVars(parents map[string]json.RawMessage) (map[string]any, error) {
	steps := make([]string, 0, len(parents))
	for name := range parents {
		steps = append(steps, name)
	}
	slices.Sort(steps)
	all := make(map[string]any, len(parents))
	vars := make(map[string]any)
	for _, name := range steps {
		var v any
		if raw := parents[name]; len(raw) > 0 {
			if err := json.Unmarshal(raw, &v); err != nil {
				return nil, fmt.Errorf("result of parent %q is not valid JSON: %w", name, err)
			}
		}
		all[name] = v
		obj, ok := v.(map[string]any)
		if !ok {
			continue
		}
		for k, kv := range obj {
			if k != parentsVar && celIdent.MatchString(k) && !celReserved[k] {
				vars[k] = kv
			}
		}
	}
	vars[parentsVar] = all
	return vars, nil
}

// programCacheSize bounds the cache: a key is (expression, variable names),
// and results whose key sets vary could otherwise grow it without end.
// Clearing it when full is crude but keeps memory bounded and the common
// case (a few workflows' conditions over stable result shapes) hot.
const programCacheSize = 1024

type programCache struct {
	mu sync.Mutex
	m  map[string]cel.Program
}

var programs = &programCache{m: make(map[string]cel.Program)}

// get returns the program for expr with exactly these variables declared
// (plus parents), compiling it on a miss. Programs are safe for concurrent
// evaluation, so one is shared by every caller.
func (c *programCache) get(expr string, vars []string) (cel.Program, error) {
	key := expr + "\x00" + strings.Join(vars, ",")
	c.mu.Lock()
	prg, ok := c.m[key]
	c.mu.Unlock()
	if ok {
		return prg, nil
	}
	prg, err := compileProgram(expr, vars)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if len(c.m) >= programCacheSize {
		clear(c.m)
	}
	c.m[key] = prg
	c.mu.Unlock()
	return prg, nil
}

func compileProgram(expr string, vars []string) (cel.Program, error) {
	env, err := conditionEnv()
	if err != nil {
		return nil, fmt.Errorf("condition environment: %w", err)
	}
	decls := make([]cel.EnvOption, 0, len(vars))
	for _, v := range vars {
		decls = append(decls, cel.Variable(v, cel.DynType))
	}
	env, err = env.Extend(decls...)
	if err != nil {
		return nil, fmt.Errorf("declare condition variables: %w", err)
	}
	ast, iss := env.Compile(expr)
	if iss.Err() != nil {
		err := issuesError(iss)
		return nil, fmt.Errorf("%w (variables: %s)", err, strings.Join(append(slices.Clone(vars), parentsVar), ", "))
	}
	if err := boolOutput(ast.OutputType()); err != nil {
		return nil, err
	}
	prg, err := env.Program(ast)
	if err != nil {
		return nil, fmt.Errorf("plan condition: %w", err)
	}
	return prg, nil
}
