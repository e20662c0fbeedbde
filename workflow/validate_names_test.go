package workflow_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/workflow"
)

// TestValidateRejectsControlCharactersInHeaderNames: the workflow's name,
// its correlation id and each step's name reach the app as request headers,
// which net/http refuses to send with a control character in them.
func TestValidateRejectsControlCharactersInHeaderNames(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		w    workflow.Workflow
		path string
	}{
		{"WorkflowNameCRLF", workflow.Workflow{Name: "etl\r\nX-Injected: 1", Steps: []workflow.Step{step("a")}}, "name"},
		{"WorkflowNameNUL", workflow.Workflow{Name: "etl\x00", Steps: []workflow.Step{step("a")}}, "name"},
		{"CorrelationIDTab", workflow.Workflow{Name: "etl", CorrelationID: "c\t1", Steps: []workflow.Step{step("a")}}, "correlation_id"},
		{"CorrelationIDDEL", workflow.Workflow{Name: "etl", CorrelationID: "c\x7f", Steps: []workflow.Step{step("a")}}, "correlation_id"},
		{"StepNameLF", wf(step("a"), step("b\nc")), "jobs[1].name"},
		{"StepNameC1", wf(step("a\u0085")), "jobs[0].name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.w.Validate()
			require.ErrorIs(t, err, workflow.ErrInvalid)
			var ve *workflow.ValidationError
			require.True(t, errors.As(err, &ve))
			require.Equal(t, tt.path, ve.Problems[0].Path)
			require.Contains(t, ve.Problems[0].Message, "control character")
		})
	}
	require.NoError(t, workflow.Workflow{Name: "etl nightly", CorrelationID: "req-42", Steps: []workflow.Step{step("extract é")}}.Validate())
}
