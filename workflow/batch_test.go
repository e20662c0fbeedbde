package workflow_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/workflow"
)

func TestParseBatchStep(t *testing.T) {
	t.Parallel()
	w, err := workflow.ParseJSON([]byte(`{"name": "thumbs", "jobs": [
		{"name": "list", "queue": "q"},
		{"name": "resize", "queue": "img", "batch": [{"img": 1}, {"img": 2}], "depends_on": ["list"]},
		{"name": "report", "queue": "q", "depends_on": ["resize"], "condition": "size(parents.resize) == 2"}]}`))
	require.NoError(t, err)
	require.Len(t, w.Steps[1].Batch, 2)
	require.JSONEq(t, `{"img": 2}`, string(w.Steps[1].Batch[1]))
	require.Empty(t, w.Steps[1].Payload)
	require.Equal(t, "resize[1]", workflow.BatchJobName("resize", 1))

	y, err := workflow.ParseYAML([]byte("name: thumbs\njobs:\n  - name: resize\n    queue: img\n    batch:\n      - {img: 1}\n"))
	require.NoError(t, err)
	require.JSONEq(t, `{"img": 1}`, string(y.Steps[0].Batch[0]))
}

func TestBatchStepValidation(t *testing.T) {
	t.Parallel()
	cases := []struct{ name, doc, message string }{
		{"PayloadAndBatch", `{"name":"w","jobs":[{"name":"a","queue":"q","payload":{},"batch":[{}]}]}`,
			"jobs[0].batch: give payload or batch, not both"},
		{"EmptyBatch", `{"name":"w","jobs":[{"name":"a","queue":"q","batch":[]}]}`,
			"jobs[0].batch: needs at least one payload"},
		{"BracketInName", `{"name":"w","jobs":[{"name":"a[0]","queue":"q"}]}`,
			"reserved for the jobs of batch steps"},
		{"NotAnArray", `{"name":"w","jobs":[{"name":"a","queue":"q","batch":{}}]}`,
			"jobs[0].batch: want an array"},
	}
	for _, tc := range cases {
		_, err := workflow.ParseJSON([]byte(tc.doc))
		require.Error(t, err, tc.name)
		require.Contains(t, err.Error(), tc.message, tc.name)
	}
}
