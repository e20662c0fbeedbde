package dispatch

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestEnvelopeCarriesParentResultsByStepName(t *testing.T) {
	t.Parallel()
	a := setup(t, status(http.StatusOK))
	j := fullJob()
	tg := a.target()
	tg.Envelope = true
	tg.Parents = map[string]json.RawMessage{
		"extract":  json.RawMessage(`{"rows":12,"source":"db"}`),
		"classify": json.RawMessage(`null`),
	}
	require.Equal(t, OutcomeCompleted, a.d.Dispatch(context.Background(), j, tg).Outcome)
	r := a.last(t)
	require.JSONEq(t, `{"id":"0191f5a6-7b3c-7d4e-8f90-123456789abc","queue":"emails","attempt":2,
		"payload":{"to":"a@example.com"},
		"parents":{"extract":{"rows":12,"source":"db"},"classify":null}}`, string(r.body))
	require.Equal(t, "send_welcome", r.header.Get(HeaderStep))
	require.Equal(t, "0191f5a6-0000-7000-8000-000000000001,0191f5a6-0000-7000-8000-000000000002", r.header.Get(HeaderParentIDs))
}

func TestParentsNeverReachABarePayload(t *testing.T) {
	t.Parallel()
	a := setup(t, status(http.StatusOK))
	tg := a.target()
	tg.Parents = map[string]json.RawMessage{"extract": json.RawMessage(`{"rows":12}`)}
	require.Equal(t, OutcomeCompleted, a.d.Dispatch(context.Background(), fullJob(), tg).Outcome)
	require.Equal(t, `{"to":"a@example.com"}`, string(a.last(t).body),
		"without the envelope the app gets its payload exactly as enqueued")
}
