package dispatch

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestResultABackendCannotStoreIsDroppedWithANote: a 2xx body Go accepts as
// JSON but a backend would refuse completes the job without a result, and
// the note says what was wrong, so one such answer cannot fail the batch of
// completions it is written with.
func TestResultABackendCannotStoreIsDroppedWithANote(t *testing.T) {
	t.Parallel()
	json := map[string]string{"Content-Type": "application/json"}
	tests := []struct {
		name, body, note string
	}{
		{"lone surrogate", `{"x":"\ud800"}`,
			`result not stored: response body (14 bytes, Content-Type "application/json") holds a lone UTF-16 surrogate escape \ud800 at byte 6 (half of a character, e.g. an emoji cut in two), which MariaDB cannot store`},
		{"32 levels", strings.Repeat("[", 32) + strings.Repeat("]", 32),
			`result not stored: response body (64 bytes, Content-Type "application/json") nests arrays and objects 32 levels deep at byte 31; at most 31 levels can be stored`},
		{"NUL escape", `"\u0000"`,
			`result not stored: response body (8 bytes, Content-Type "application/json") holds the escape \u0000 at byte 1, which PostgreSQL cannot store`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := setup(t, answer{code: 200, header: json, body: tt.body}.handler())
			res := a.d.Dispatch(context.Background(), minimalJob(), a.target())
			require.Equal(t, OutcomeCompleted, res.Outcome)
			require.Nil(t, res.Result)
			require.Equal(t, tt.note, res.ResultNote)
		})
	}
}
