package workflow_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/workflow"
)

// designExample is the documented workflow definition (the shape of
// hammerwork's guide), with a real trace id for "...".
const designExample = `{"name": "data_pipeline", "description": "...", "failure_policy": "continue_on_failure",
 "priority": "high", "timeout": "2h", "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "correlation_id": "daily-001",
 "jobs": [
   {"name": "extract", "queue": "etl_queue", "payload": {"source": "production_db"}, "depends_on": []},
   {"name": "transform", "queue": "etl_queue", "payload": {}, "depends_on": ["extract"],
    "condition": "rows > 0", "max_attempts": 5, "timeout": "30s", "priority": "normal",
    "retry": {"strategy": "exponential", "initial": "1s", "multiplier": 2, "max": "5m", "jitter": 0.1}}
 ]}`

const designExampleYAML = `
name: data_pipeline
description: "..."
failure_policy: continue_on_failure
priority: high
timeout: 2h
trace_id: 4bf92f3577b34da6a3ce929d0e0e4736
correlation_id: daily-001
jobs:
  - name: extract
    queue: etl_queue
    payload: {source: production_db}
    depends_on: []
  - name: transform
    queue: etl_queue
    payload: {}
    depends_on: [extract]
    condition: rows > 0
    max_attempts: 5
    timeout: 30s
    priority: normal
    retry:
      strategy: exponential
      initial: 1s
      multiplier: 2
      max: 5m
      jitter: 0.1
`

// guideExample is the definition file of hammerwork's workflow guide.
const guideExample = `{
  "name": "data_pipeline",
  "description": "Daily data processing pipeline",
  "failure_policy": "continue_on_failure",
  "jobs": [
    {
      "name": "extract",
      "queue": "etl_queue",
      "payload": {"source": "production_db"},
      "depends_on": []
    },
    {
      "name": "transform",
      "queue": "etl_queue", 
      "payload": {"rules": "business_logic.json"},
      "depends_on": ["extract"]
    },
    {
      "name": "load",
      "queue": "etl_queue",
      "payload": {"destination": "data_warehouse"},
      "depends_on": ["transform"]
    }
  ]
}`

const guideExampleYAML = `# the guide's pipeline in YAML
name: data_pipeline
description: Daily data processing pipeline
failure_policy: continue_on_failure
jobs:
  - name: extract
    queue: etl_queue
    payload:
      source: production_db
  - name: transform
    queue: etl_queue
    payload:
      rules: business_logic.json
    depends_on: [extract]
  - name: load
    queue: etl_queue
    payload:
      destination: data_warehouse
    depends_on:
      - transform
`

func requireDesignExample(t *testing.T, w workflow.Workflow) {
	t.Helper()
	require.Equal(t, "data_pipeline", w.Name)
	require.Equal(t, "...", w.Description)
	require.Equal(t, workflow.ContinueOnFailure, w.FailurePolicy)
	require.Equal(t, job.PriorityHigh, *w.Priority)
	require.Equal(t, 2*time.Hour, w.Timeout.D())
	require.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", w.TraceID)
	require.Equal(t, "daily-001", w.CorrelationID)
	require.Len(t, w.Steps, 2)

	extract := w.Steps[0]
	require.Equal(t, "extract", extract.Name)
	require.Equal(t, "etl_queue", extract.Queue)
	require.JSONEq(t, `{"source": "production_db"}`, string(extract.Payload))
	require.Empty(t, extract.DependsOn)

	transform := w.Steps[1]
	require.JSONEq(t, `{}`, string(transform.Payload))
	require.Equal(t, []string{"extract"}, transform.DependsOn)
	require.Equal(t, "rows > 0", transform.Condition)
	require.Equal(t, 5, transform.MaxAttempts)
	require.Equal(t, 30*time.Second, transform.Timeout.D())
	require.Equal(t, job.PriorityNormal, *transform.Priority)
	jitter := 0.1
	require.Equal(t, &job.RetryPolicy{
		Strategy: "exponential", Initial: job.Duration(time.Second), Multiplier: 2,
		Max: job.Duration(5 * time.Minute), Jitter: &jitter,
	}, transform.Retry)
}

func requireGuideExample(t *testing.T, w workflow.Workflow) {
	t.Helper()
	require.Equal(t, "data_pipeline", w.Name)
	require.Equal(t, "Daily data processing pipeline", w.Description)
	require.Equal(t, workflow.ContinueOnFailure, w.FailurePolicy)
	require.Nil(t, w.Priority)
	require.Equal(t, []string{"extract->transform", "transform->load"}, edges(w))
	require.JSONEq(t, `{"rules": "business_logic.json"}`, string(w.Steps[1].Payload))
	require.JSONEq(t, `{"destination": "data_warehouse"}`, string(w.Steps[2].Payload))
}

func TestParseExamples(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		file  string
		doc   string
		check func(*testing.T, workflow.Workflow)
	}{
		{"DesignJSON", "pipeline.json", designExample, requireDesignExample},
		{"DesignYAML", "pipeline.yaml", designExampleYAML, requireDesignExample},
		{"GuideJSON", "pipeline.JSON", guideExample, requireGuideExample},
		{"GuideYAML", "pipeline.yml", guideExampleYAML, requireGuideExample},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w, err := workflow.ParseFile(tc.file, []byte(tc.doc))
			require.NoError(t, err)
			tc.check(t, w)
		})
	}
}

func TestParseYAMLPayloadBecomesJSON(t *testing.T) {
	t.Parallel()
	w, err := workflow.ParseYAML([]byte(`
name: w
priority: 3
jobs:
  - name: a
    queue: q
    payload:
      1: one
      true: yes
      nested: {list: [1, 2.5, "three", null], empty: {}}
      anchor: &x {k: v}
      alias: *x
`))
	require.NoError(t, err)
	require.Equal(t, job.PriorityHigh, *w.Priority)
	require.JSONEq(t, `{"1": "one", "true": "yes", "nested": {"list": [1, 2.5, "three", null], "empty": {}},
		"anchor": {"k": "v"}, "alias": {"k": "v"}}`, string(w.Steps[0].Payload))
	require.True(t, json.Valid(w.Steps[0].Payload))
}

// TestParseErrorsNamePaths: every problem names the field by its path in
// the document, for JSON and YAML alike.
func TestParseErrorsNamePaths(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		yaml    bool
		doc     string
		is      error
		message string
	}{
		{"BadDuration", false, `{"name":"w","jobs":[{"name":"a","queue":"q"},{"name":"b","queue":"q","timeout":"soon"}]}`,
			workflow.ErrInvalid, `jobs[1].timeout: invalid duration "soon"`},
		{"DurationAsNumber", false, `{"name":"w","jobs":[{"name":"a","queue":"q","delay":30}]}`,
			workflow.ErrMalformed, `jobs[0].delay: want a duration string such as "30s", got number 30`},
		{"UnknownDependency", false, `{"name":"w","jobs":[{"name":"extract","queue":"q"},{"name":"load","queue":"q"},{"name":"c","queue":"q","depends_on":["lod"]}]}`,
			workflow.ErrUnknownDependency, `jobs[2].depends_on[0]: unknown step "lod" (a dependency of "c")`},
		{"Cycle", false, `{"name":"w","jobs":[{"name":"a","queue":"q","depends_on":["b"]},{"name":"b","queue":"q","depends_on":["a"]}]}`,
			workflow.ErrCycle, `jobs[0].depends_on[0]: cycle: a -> b -> a`},
		{"UnknownTopLevelField", false, `{"name":"w","retries":3,"jobs":[{"name":"a","queue":"q"}]}`,
			workflow.ErrMalformed, `retries: unknown field`},
		{"UnknownStepField", false, `{"name":"w","jobs":[{"name":"a","queue":"q"},{"name":"b","queue":"q","depend_on":["a"]}]}`,
			workflow.ErrMalformed, `jobs[1].depend_on: unknown field`},
		{"UnknownRetryField", false, `{"name":"w","jobs":[{"name":"a","queue":"q","retry":{"strategy":"fixed","delay":"1s"}}]}`,
			workflow.ErrMalformed, `jobs[0].retry.delay: unknown field`},
		{"RepeatedField", false, `{"name":"w","name":"v","jobs":[{"name":"a","queue":"q"}]}`,
			workflow.ErrMalformed, `name: field appears twice`},
		{"NameNotString", false, `{"name":7,"jobs":[{"name":"a","queue":"q"}]}`,
			workflow.ErrMalformed, `name: want a string, got number`},
		{"MaxAttemptsNotInteger", false, `{"name":"w","jobs":[{"name":"a","queue":"q","max_attempts":5.5}]}`,
			workflow.ErrMalformed, `jobs[0].max_attempts: want an integer, got number 5.5`},
		{"PriorityOfWrongType", false, `{"name":"w","priority":true,"jobs":[{"name":"a","queue":"q"}]}`,
			workflow.ErrMalformed, `priority: want a priority name or number, got boolean`},
		{"UnknownPriority", false, `{"name":"w","jobs":[{"name":"a","queue":"q","priority":"urgent"}]}`,
			workflow.ErrInvalid, `jobs[0].priority: unknown priority "urgent"`},
		{"UnknownFailurePolicy", false, `{"name":"w","failure_policy":"never","jobs":[{"name":"a","queue":"q"}]}`,
			workflow.ErrInvalid, `failure_policy: unknown failure_policy "never"`},
		{"JitterNotNumber", false, `{"name":"w","jobs":[{"name":"a","queue":"q","retry":{"jitter":"lots"}}]}`,
			workflow.ErrMalformed, `jobs[0].retry.jitter: want a number, got string`},
		{"RetryInvalid", false, `{"name":"w","jobs":[{"name":"a","queue":"q","retry":{"multiplier":0.5}}]}`,
			workflow.ErrInvalid, `jobs[0].retry: retry.multiplier 0.5 must be at least 1`},
		{"JobsNotArray", false, `{"name":"w","jobs":{"name":"a"}}`, workflow.ErrMalformed, `jobs: want an array, got object`},
		{"JobNotObject", false, `{"name":"w","jobs":["a"]}`, workflow.ErrMalformed, `jobs[0]: want an object, got string`},
		{"DependsOnNotStrings", false, `{"name":"w","jobs":[{"name":"a","queue":"q"},{"name":"b","queue":"q","depends_on":[1]}]}`,
			workflow.ErrMalformed, `jobs[1].depends_on[0]: want a string, got number`},
		{"DocumentNotObject", false, `[1,2]`, workflow.ErrMalformed, `want an object, got array`},
		{"SyntaxError", false, "{\"name\": \"w\",\n \"jobs\": [}", workflow.ErrMalformed, `invalid JSON at line 2, column 11`},
		{"TrailingData", false, `{"name":"w","jobs":[{"name":"a","queue":"q"}]} {}`, workflow.ErrMalformed, `invalid JSON at line 1`},
		{"EmptyJSON", false, " \n", workflow.ErrMalformed, `empty document`},
		{"NoJobs", false, `{"name":"w","jobs":[]}`, workflow.ErrEmpty, `jobs: a workflow needs at least one job`},
		{"NullJobs", false, `{"name":"w","jobs":null}`, workflow.ErrEmpty, `jobs: a workflow needs at least one job`},
		{"ConditionSyntax", false, `{"name":"w","jobs":[{"name":"a","queue":"q"},{"name":"b","queue":"q","depends_on":["a"],"condition":"rows >"}]}`,
			workflow.ErrInvalid, `jobs[1].condition: column 7: Syntax error`},
		{"YAMLBadDuration", true, "name: w\njobs:\n  - {name: a, queue: q}\n  - {name: b, queue: q, timeout: soon}\n",
			workflow.ErrInvalid, `jobs[1].timeout: invalid duration "soon"`},
		{"YAMLUnknownField", true, "name: w\njobs:\n  - name: a\n    queue: q\n    retires: 3\n", workflow.ErrMalformed, `jobs[0].retires: unknown field`},
		{"YAMLInfinity", true, "name: w\njobs:\n  - name: a\n    queue: q\n    payload: {x: .inf}\n", workflow.ErrInvalid, `jobs[0].payload.x: +Inf cannot be represented in JSON`},
		{"YAMLSyntax", true, "name: w\njobs: [\n", workflow.ErrMalformed, `invalid YAML: [2:7]`},
		{"YAMLTwoDocuments", true, "name: w\n---\nname: v\n", workflow.ErrMalformed, `one YAML document`},
		{"YAMLEmpty", true, "", workflow.ErrMalformed, `empty document`},
		{"YAMLDuplicateKey", true, "name: w\nname: v\njobs: []\n", workflow.ErrMalformed, `mapping key "name" already defined`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			parse := workflow.ParseJSON
			if tc.yaml {
				parse = workflow.ParseYAML
			}
			w, err := parse([]byte(tc.doc))
			require.ErrorIs(t, err, tc.is)
			if tc.is != workflow.ErrMalformed {
				require.NotErrorIs(t, err, workflow.ErrMalformed, "a well-formed document with a bad value is not malformed")
			}
			require.ErrorIs(t, err, workflow.ErrInvalid)
			var ve *workflow.ValidationError
			require.ErrorAs(t, err, &ve)
			require.ErrorContains(t, err, tc.message)
			require.Empty(t, w.Name)
		})
	}
}

func TestParseReportsEveryDecodeProblem(t *testing.T) {
	t.Parallel()
	_, err := workflow.ParseJSON([]byte(`{"name":"w","jobs":[{"name":"a","queue":"q","timeout":"soon","extra":1},{"name":"b","queue":"q","max_attempts":"5"}]}`))
	var ve *workflow.ValidationError
	require.ErrorAs(t, err, &ve)
	paths := make([]string, 0, len(ve.Problems))
	for _, p := range ve.Problems {
		paths = append(paths, p.Path)
	}
	require.Equal(t, []string{"jobs[0].timeout", "jobs[0].extra", "jobs[1].max_attempts"}, paths)
}

func TestParseFileRejectsUnknownExtension(t *testing.T) {
	t.Parallel()
	_, err := workflow.ParseFile("pipeline.toml", []byte(guideExample))
	require.ErrorIs(t, err, workflow.ErrInvalid)
	require.ErrorContains(t, err, `unknown extension ".toml"`)
}

func TestParseNullMeansAbsent(t *testing.T) {
	t.Parallel()
	w, err := workflow.ParseJSON([]byte(`{"name":"w","description":null,"priority":null,"jobs":[{"name":"a","queue":"q","payload":null,"retry":null}]}`))
	require.NoError(t, err)
	require.Nil(t, w.Priority)
	require.Nil(t, w.Steps[0].Payload)
	require.Nil(t, w.Steps[0].Retry)
}

func FuzzParseJSON(f *testing.F) {
	for _, seed := range []string{designExample, guideExample, `{}`, `[]`, `{"jobs":[{}]}`, `{"name":"w","jobs":[{"name":"a","queue":"q","depends_on":["a"]}]}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		w, err := workflow.ParseJSON(b)
		if err != nil {
			var ve *workflow.ValidationError
			require.ErrorAs(t, err, &ve)
			return
		}
		require.NoError(t, w.Validate())
	})
}

func FuzzParseYAML(f *testing.F) {
	for _, seed := range []string{designExampleYAML, guideExampleYAML, "", "a: [", "name: w\njobs:\n - {name: a, queue: q, payload: {1: .nan}}\n"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		w, err := workflow.ParseYAML(b)
		if err == nil {
			require.NoError(t, w.Validate())
		}
	})
}
