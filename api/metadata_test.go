package api_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/store"
)

func TestWorkflowMetadataABackendCannotStoreIs422(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, metadata string
		mention        []string
	}{
		{"lone surrogate", `{"a": "\ud800"}`, []string{"metadata", `lone UTF-16 surrogate escape \ud800`}},
		{"numeric overflow", `{"a": 1e999999}`, []string{"metadata", "1e999999"}},
		{"NUL escape", `{"a": "x\u0000"}`, []string{"metadata", `\u0000`}},
		{"32 levels", `{"a": ` + deep(31) + `}`, []string{"metadata", "32 levels deep"}},
	}
	forEveryBackend(t, func(t *testing.T, st store.Store) {
		e := setup(t, st)
		for _, tc := range cases {
			body := `{"name": "w", "metadata": ` + tc.metadata + `, "jobs": [{"name": "a", "queue": "q"}]}`
			er := e.post(t, "/v1/workflows", body).requireError(t, http.StatusUnprocessableEntity, "invalid")
			for _, m := range tc.mention {
				require.Contains(t, er.Message, m, tc.name)
			}
		}
		page, err := st.ListWorkflows(t.Context(), store.ListWorkflowsParams{})
		require.NoError(t, err)
		require.Empty(t, page.Workflows, "a refused workflow writes nothing")
		e.requireJobCount(t, 0)

		c := e.createWorkflow(t, `{"name": "w", "metadata": {"team": "billing", "emoji": "\ud83d\ude00"}, "jobs": [{"name": "a", "queue": "q"}]}`)
		var got map[string]string
		require.NoError(t, json.Unmarshal(e.getWorkflow(t, c.ID).Metadata, &got))
		require.Equal(t, map[string]string{"team": "billing", "emoji": "😀"}, got, "metadata every backend stores is kept")
	})
}
