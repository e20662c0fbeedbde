package workflow_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/workflow"
)

// requireProblems checks what a rejected definition must give its user: a
// *ValidationError matching ErrInvalid with at least one problem, each with
// a message, and a path unless the problem is with the document as a whole.
func requireProblems(t *testing.T, in []byte, err error) {
	t.Helper()
	var ve *workflow.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("definition %q: error %T %q is not a *workflow.ValidationError", in, err, err)
	}
	if !errors.Is(err, workflow.ErrInvalid) || len(ve.Problems) == 0 {
		t.Fatalf("definition %q: error %q has no problems or does not match ErrInvalid", in, err)
	}
	for _, p := range ve.Problems {
		if strings.TrimSpace(p.Message) == "" {
			t.Fatalf("definition %q: problem at %q has no message (%q)", in, p.Path, err)
		}
		if p.Path == "" && !errors.Is(p.Err, workflow.ErrMalformed) && !strings.Contains(p.Message, "more problems") {
			t.Fatalf("definition %q: problem %q names no field", in, p.Message)
		}
	}
}

// requireRoundTrip checks that an accepted definition, written back as
// JSON, parses to the same definition in both formats: JSON is YAML too.
func requireRoundTrip(t *testing.T, in []byte, w workflow.Workflow) {
	t.Helper()
	if err := w.Validate(); err != nil {
		t.Fatalf("definition %q was accepted but does not validate: %v", in, err)
	}
	out, err := json.Marshal(w)
	if err != nil {
		t.Fatalf("definition %q was accepted but does not marshal: %v", in, err)
	}
	for name, parse := range map[string]func([]byte) (workflow.Workflow, error){
		"ParseJSON": workflow.ParseJSON, "ParseYAML": workflow.ParseYAML,
	} {
		back, err := parse(out)
		if err != nil {
			t.Fatalf("definition %q was accepted, but its JSON %s fails %s: %v", in, out, name, err)
		}
		again, err := json.Marshal(back)
		if err != nil {
			t.Fatalf("%s(%s) does not marshal: %v", name, out, err)
		}
		want := out
		if name == "ParseYAML" {
			// YAML keeps each value, not its JSON spelling: a payload's
			// "\u0008" comes back as the same string written "\b".
			want, again = canonicalJSON(t, out), canonicalJSON(t, again)
		}
		if !bytes.Equal(want, again) {
			t.Fatalf("definition %q does not round-trip through %s:\n first %s\nsecond %s", in, name, want, again)
		}
	}
}

// canonicalJSON re-encodes a JSON document, so two spellings of the same
// values compare equal.
func canonicalJSON(t *testing.T, b []byte) []byte {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	out, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("encode %s: %v", b, err)
	}
	return out
}

// FuzzDefinitionJSON: any document is either a definition that validates and
// round-trips, or a list of problems that each say what and where.
func FuzzDefinitionJSON(f *testing.F) {
	f.Add([]byte(designExample))
	f.Add([]byte(guideExample))
	f.Fuzz(func(t *testing.T, b []byte) {
		w, err := workflow.ParseJSON(b)
		if err != nil {
			requireProblems(t, b, err)
			return
		}
		requireRoundTrip(t, b, w)
	})
}

// FuzzDefinitionYAML: the same for YAML definitions, whose values must all be
// representable in JSON.
func FuzzDefinitionYAML(f *testing.F) {
	f.Add([]byte(designExampleYAML))
	f.Add([]byte(guideExampleYAML))
	f.Fuzz(func(t *testing.T, b []byte) {
		w, err := workflow.ParseYAML(b)
		if err != nil {
			requireProblems(t, b, err)
			return
		}
		requireRoundTrip(t, b, w)
	})
}

// TestParseYAMLBoundsAliasExpansion: nine levels of aliases, each repeating
// the one before nine times, would expand 400 bytes of YAML to 9^10 strings.
// The parser counts them without expanding, and refuses.
func TestParseYAMLBoundsAliasExpansion(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("name: laughs\njobs:\n - name: a\n   queue: q\n   payload:\n     l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n")
	for i := 1; i <= 9; i++ {
		fmt.Fprintf(&b, "     l%d: &l%d [%s]\n", i, i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*l%d, ", i-1), 9), ", "))
	}
	_, err := workflow.ParseYAML([]byte(b.String()))
	require.ErrorIs(t, err, workflow.ErrMalformed)
	require.ErrorContains(t, err, "with its aliases expanded the document holds more than 4194304 values")
}

// TestParseRejectsInvalidUTF8: a byte that is not UTF-8 is refused in both
// formats with its place, rather than kept in a payload (which PostgreSQL's
// JSONB refuses) or replaced in a name.
func TestParseRejectsInvalidUTF8(t *testing.T) {
	t.Parallel()
	doc := "{\"name\":\"w\",\n \"jobs\":[{\"name\":\"a\",\"queue\":\"q\",\"payload\":{\"k\":\"\x82\"}}]}"
	for name, parse := range map[string]func([]byte) (workflow.Workflow, error){
		"json": workflow.ParseJSON, "yaml": workflow.ParseYAML,
	} {
		_, err := parse([]byte(doc))
		require.ErrorIs(t, err, workflow.ErrMalformed, name)
		require.ErrorContains(t, err, "byte 0x82 at line 2, column 50 is not UTF-8", name)
	}
}

// TestParseRetryJitterMode: a step's retry takes every field of a job's
// retry policy, jitter_mode too.
func TestParseRetryJitterMode(t *testing.T) {
	t.Parallel()
	w, err := workflow.ParseYAML([]byte("name: w\njobs:\n - name: a\n   queue: q\n   retry: {strategy: fixed, jitter: 0.2, jitter_mode: additive}\n"))
	require.NoError(t, err)
	require.Equal(t, job.JitterAdditive, w.Steps[0].Retry.JitterMode)

	_, err = workflow.ParseJSON([]byte(`{"name":"w","jobs":[{"name":"a","queue":"q","retry":{"jitter_mode":"sideways"}}]}`))
	require.ErrorContains(t, err, `jobs[0].retry: retry.jitter_mode "sideways" is unknown`)
}
