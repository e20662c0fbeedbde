package tests

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/hammerwork-go/hw-agent/tracing"
)

// otlpReceiver is an OTLP/HTTP trace endpoint that keeps every span the
// agent exports, decoded with the OTLP protobuf types.
type otlpReceiver struct {
	srv *httptest.Server

	mu       sync.Mutex
	spans    []*tracepb.Span
	services []string
}

func newOTLPReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	r := &otlpReceiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != "/v1/traces" {
			http.NotFound(w, req)
			return
		}
		body, err := io.ReadAll(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var export collectortrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &export); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		for _, rs := range export.GetResourceSpans() {
			for _, kv := range rs.GetResource().GetAttributes() {
				if kv.GetKey() == "service.name" {
					r.services = append(r.services, kv.GetValue().GetStringValue())
				}
			}
			for _, ss := range rs.GetScopeSpans() {
				r.spans = append(r.spans, ss.GetSpans()...)
			}
		}
		r.mu.Unlock()
		out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *otlpReceiver) received() ([]*tracepb.Span, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*tracepb.Span(nil), r.spans...), append([]string(nil), r.services...)
}

func spanAttr(s *tracepb.Span, key string) string {
	for _, kv := range s.GetAttributes() {
		if kv.GetKey() == key {
			if v, ok := kv.GetValue().GetValue().(*commonpb.AnyValue_IntValue); ok {
				return fmt.Sprint(v.IntValue)
			}
			return kv.GetValue().GetStringValue()
		}
	}
	return ""
}

// The real binary, exporting OTLP/HTTP, turns a fan-in workflow into one
// trace: the workflow's root producer span, a consumer span per job under
// it, a client span per request whose context the app receives, and links
// from the fan-in job to its parents. /metrics then counts the run and
// passes the text-format parser and promlint.
func TestWorkflowTraceIsExportedOverOTLPAndMetricsCountTheRun(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			testWorkflowTrace(t, b.URL(t))
		})
	}
}

func testWorkflowTrace(t *testing.T, dbURL string) {
	receiver := newOTLPReceiver(t)
	app := newWorkflowApp(t, nil, nil)
	migrate(t, dbURL)
	const apiToken, signingSecret, dbPassword = "api-t0ken-e2e", "signing-s3cret-e2e", "db-passw0rd-e2e"
	if u, err := url.Parse(dbURL); err == nil && u.Scheme == "postgres" {
		// The test server trusts local connections, so a password is
		// accepted and ignored: it must still never be logged.
		u.User = url.UserPassword(u.User.Username(), dbPassword)
		dbURL = u.String()
	}
	agent := startAgent(t, map[string]string{
		"HW_DATABASE_URL":             dbURL,
		"HW_API_TOKEN":                apiToken,
		"HW_APP_SIGNING_SECRET":       signingSecret,
		"HW_LOG_LEVEL":                "debug",
		"HW_APP_HANDLER_URL":          app.srv.URL + "/jobs/{queue}",
		"HW_API_LISTEN":               freeAddr(t),
		"HW_AGENT_POLL_INTERVAL":      "50ms",
		"HW_LOG_FORMAT":               "json",
		"OTEL_TRACES_EXPORTER":        "otlp",
		"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
		"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.srv.URL,
		"OTEL_SERVICE_NAME":           "hw-agent-e2e",
		"OTEL_BSP_SCHEDULE_DELAY":     "50",
	})

	id, jobs := postWorkflow(t, agent, map[string]any{
		"name": "traced",
		"jobs": []any{step("left", nil, ""), step("right", nil, ""), step("join", []string{"left", "right"}, "")},
	})
	waitWorkflow(t, agent, id, "completed")
	status, body := agent.call(http.MethodGet, "/v1/workflows/"+id, nil)
	require.Equal(t, http.StatusOK, status)
	var wf struct {
		TraceID       string `json:"trace_id"`
		CorrelationID string `json:"correlation_id"`
	}
	require.NoError(t, json.Unmarshal(body, &wf))
	require.True(t, tracing.ValidTraceID(wf.TraceID), "the workflow has a trace id: %s", body)
	require.Equal(t, id, wf.CorrelationID, "a workflow without a correlation id is correlated by its id")

	// The app's requests all belong to the workflow's trace.
	calls := app.byStep()
	for _, s := range []string{"left", "right", "join"} {
		require.Len(t, calls[s], 1, "step %s", s)
		h := calls[s][0].header
		tp, err := tracing.ParseTraceparent(h.Get("traceparent"))
		require.NoError(t, err, "step %s traceparent", s)
		require.Equal(t, wf.TraceID, tp.TraceIDString(), "step %s is in the workflow's trace", s)
		require.Equal(t, id, h.Get("Hammerwork-Correlation-Id"))
		require.Contains(t, h.Get("baggage"), "hammerwork.correlation_id="+id)
	}

	// 1 producer + 3 process + 3 client spans reach the receiver.
	var spans []*tracepb.Span
	poll(t, "7 spans exported", func() (bool, string) {
		spans, _ = receiver.received()
		return len(spans) >= 7, fmt.Sprintf("%d spans", len(spans))
	})
	require.Len(t, spans, 7)
	_, services := receiver.received()
	require.Contains(t, services, "hw-agent-e2e")

	byID := map[string]*tracepb.Span{}
	for _, s := range spans {
		require.Equal(t, wf.TraceID, hex.EncodeToString(s.GetTraceId()), "span %q", s.GetName())
		byID[hex.EncodeToString(s.GetSpanId())] = s
	}
	var root *tracepb.Span
	process := map[string]*tracepb.Span{}
	for _, s := range spans {
		switch s.GetKind() {
		case tracepb.Span_SPAN_KIND_PRODUCER:
			root = s
		case tracepb.Span_SPAN_KIND_CONSUMER:
			process[spanAttr(s, "hammerwork.step")] = s
		}
	}
	require.NotNil(t, root)
	require.Equal(t, "create workflow traced", root.GetName())
	require.Empty(t, root.GetParentSpanId(), "the producer span is the root")
	for step, p := range process {
		require.Equal(t, "process pipeline", p.GetName())
		require.Equal(t, root.GetSpanId(), p.GetParentSpanId(), "%s's process span is a child of the root", step)
		require.Equal(t, jobs[step], spanAttr(p, "messaging.message.id"))
		require.Equal(t, "hammerwork", spanAttr(p, "messaging.system"))
		require.Equal(t, id, spanAttr(p, "messaging.message.conversation_id"))
		require.Equal(t, "1", spanAttr(p, "hammerwork.job.attempt"))
	}
	require.Len(t, process, 3)
	for step, c := range calls {
		tp, _ := tracing.ParseTraceparent(c[0].header.Get("traceparent"))
		client, ok := byID[tp.SpanIDString()]
		require.True(t, ok, "%s: the app's parent span was exported", step)
		require.Equal(t, tracepb.Span_SPAN_KIND_CLIENT, client.GetKind())
		require.Equal(t, process[step].GetSpanId(), client.GetParentSpanId(), "%s: the client span is under its process span", step)
	}
	var linked []string
	for _, l := range process["join"].GetLinks() {
		linked = append(linked, hex.EncodeToString(l.GetSpanId()))
	}
	require.ElementsMatch(t, []string{
		hex.EncodeToString(process["left"].GetSpanId()), hex.EncodeToString(process["right"].GetSpanId()),
	}, linked, "join links to both parents' process spans")

	// /metrics counts the run, parses and lints clean.
	var text []byte
	var mfs map[string]*dto.MetricFamily
	poll(t, "completions counted on /metrics", func() (bool, string) {
		text, mfs = scrapeMetrics(t, agent)
		got := metricValue(mfs, "hammerwork_jobs_completed_total", "pipeline")
		return got == 3, fmt.Sprintf("completed_total=%v", got)
	})
	require.Equal(t, 3.0, metricValue(mfs, "hammerwork_jobs_leased_total", "pipeline"))
	require.Equal(t, 0.0, metricValue(mfs, "hammerwork_jobs_failed_total", "pipeline"))
	require.Equal(t, 0.0, metricValue(mfs, "hammerwork_jobs_in_flight", ""))
	require.Equal(t, 1.0, metricValue(mfs, "hammerwork_app_healthy", ""))
	poll(t, "the workflow's end counted", func() (bool, string) {
		_, mfs = scrapeMetrics(t, agent)
		got := metricValue(mfs, "hammerwork_workflows_finished_total", "")
		return got == 1, fmt.Sprintf("workflows_finished_total=%v", got)
	})
	problems, err := promlint.New(bytes.NewReader(text)).Lint()
	require.NoError(t, err)
	require.Empty(t, problems)
	// Stores that retry deadlocked transactions export their count.
	_, retries := mfs["hammerwork_db_transaction_retries_total"]
	require.Equal(t, !strings.HasPrefix(dbURL, "sqlite"), retries, "hammerwork_db_transaction_retries_total on %s", dbURL)

	require.NoError(t, agent.stop(waitLimit))
	logs := agent.stderr.String()
	require.NotContains(t, logs, "spans lost")

	// Every job line carries the same keys; no secret is ever logged.
	for _, secret := range []string{apiToken, signingSecret, dbPassword} {
		require.NotContains(t, logs, secret)
	}
	jobLines := 0
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &rec), "a JSON log line: %s", line)
		if _, ok := rec["job_id"]; !ok {
			continue
		}
		jobLines++
		for _, key := range []string{"queue", "attempt", "workflow_id", "trace_id"} {
			require.Contains(t, rec, key, "job line %s", line)
		}
		require.Equal(t, id, rec["workflow_id"], line)
		require.Equal(t, wf.TraceID, rec["trace_id"], line)
	}
	require.NotZero(t, jobLines, "debug logging has job lines")
}

func scrapeMetrics(t *testing.T, a *agentProc) ([]byte, map[string]*dto.MetricFamily) {
	t.Helper()
	resp, err := a.client.Get(a.base + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	text, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(text))
	require.NoError(t, err, "/metrics parses as the Prometheus text format")
	return text, mfs
}

// metricValue is the value of the series of name with label queue (any
// series when queue is empty); 0 when absent.
func metricValue(mfs map[string]*dto.MetricFamily, name, queue string) float64 {
	for _, m := range mfs[name].GetMetric() {
		match := queue == ""
		for _, l := range m.GetLabel() {
			match = match || (l.GetName() == "queue" && l.GetValue() == queue)
		}
		if !match {
			continue
		}
		if m.Counter != nil {
			return m.GetCounter().GetValue()
		}
		return m.GetGauge().GetValue()
	}
	return 0
}
