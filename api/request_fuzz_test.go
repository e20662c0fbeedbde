package api_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hammerwork-go/hw-agent/api"
	"github.com/hammerwork-go/hw-agent/internal/testkit"
)

// fuzzRoutes are the routes whose bodies FuzzRequestBody sends; the job
// routes name a job that does not exist, so a body that decodes reaches
// the store and comes back 404.
var fuzzRoutes = []string{
	"/v1/jobs",
	"/v1/jobs/batch",
	"/v1/workflows",
	"/v1/jobs/0195b3c6-3b5e-7c1d-9d7e-3f7a1b2c4d5e/complete",
	"/v1/jobs/0195b3c6-3b5e-7c1d-9d7e-3f7a1b2c4d5e/fail",
	"/v1/jobs/0195b3c6-3b5e-7c1d-9d7e-3f7a1b2c4d5e/heartbeat",
}

// fuzzMaxBody is small enough for the fuzzer to cross, so the 413 path is
// exercised too.
const fuzzMaxBody = 16 << 10

// FuzzRequestBody posts any body to each route of an in-process server on
// a real SQLite store. Whatever the body, the answer is never a 5xx, and a
// rejection is the documented error shape with a code and a message that
// is the API's own words, not a bare Go error.
func FuzzRequestBody(f *testing.F) {
	st := testkit.SQLite(f)
	// logs keeps what the server logged for the request under test.
	logs := &testkit.Buffer{}
	srv := api.New(api.Params{
		Store:        st,
		MaxBodyBytes: fuzzMaxBody,
		Logger:       slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Now:          func() time.Time { return now },
	})

	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		path := fuzzRoutes[int(route)%len(fuzzRoutes)]
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		logs.Take()
		srv.ServeHTTP(rec, req)

		if rec.Code >= 500 {
			t.Fatalf("POST %s %q: %d %s\nserver log: %s", path, body, rec.Code, rec.Body, logs.Take())
		}
		if rec.Code < 400 {
			return
		}
		var e struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
			t.Fatalf("POST %s %q: %d with a body that is not the error shape: %s", path, body, rec.Code, rec.Body)
		}
		msg := e.Error.Message
		switch {
		case e.Error.Code == "" || strings.TrimSpace(msg) == "":
			t.Fatalf("POST %s %q: %d without a code or message: %s", path, body, rec.Code, rec.Body)
		case strings.HasPrefix(msg, "json: "), strings.Contains(msg, "runtime error"), strings.Contains(msg, "<nil>"):
			t.Fatalf("POST %s %q: %d with a bare Go error for a message: %q", path, body, rec.Code, msg)
		}
	})
}
