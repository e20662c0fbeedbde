package dispatch

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// answer is how a test app responds.
type answer struct {
	code   int
	header map[string]string
	body   string
}

func (an answer) handler() http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		for k, v := range an.header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(an.code)
		_, _ = w.Write([]byte(an.body))
	}
}

// TestResponseTable covers every row of the README's "Response -> outcome" table.
func TestResponseTable(t *testing.T) {
	t.Parallel()
	noRetry := map[string]string{HeaderNoRetry: "true"}
	tests := []struct {
		name    string
		answer  answer
		outcome Outcome
		label   string
		error   string
		result  string
		note    string
	}{
		{"200 with JSON stores the result", answer{code: 200, body: `{"sent":true}`}, OutcomeCompleted, "", "", `{"sent":true}`, ""},
		{"201 with JSON stores the result", answer{code: 201, body: `[1,2]`}, OutcomeCompleted, "", "", `[1,2]`, ""},
		{"204 stores nothing", answer{code: 204}, OutcomeCompleted, "", "", "", ""},
		{"200 with empty body stores nothing", answer{code: 200}, OutcomeCompleted, "", "", "", ""},
		{"200 with whitespace body stores nothing", answer{code: 200, body: " \n"}, OutcomeCompleted, "", "", "", ""},
		{"200 with text notes why nothing was stored", answer{code: 200, header: map[string]string{"Content-Type": "text/plain"}, body: "ok"}, OutcomeCompleted, "", "", "",
			`result not stored: response body (2 bytes, Content-Type "text/plain") is not valid JSON`},
		{"200 with invalid UTF-8 is not JSON", answer{code: 200, header: map[string]string{"Content-Type": "application/json"}, body: "\"\xff\""}, OutcomeCompleted, "", "", "",
			`result not stored: response body (3 bytes, Content-Type "application/json") is not valid JSON`},
		{"200 ignores No-Retry", answer{code: 200, header: noRetry, body: `1`}, OutcomeCompleted, "", "", `1`, ""},
		{"202 stays running", answer{code: 202, body: `{"queued":true}`}, OutcomeAccepted, "", "", "", ""},
		{"408 retries", answer{code: 408, body: "slow"}, OutcomeRetry, "http_408", "408 Request Timeout: slow", "", ""},
		{"409 retries", answer{code: 409, body: "locked"}, OutcomeRetry, "http_409", "409 Conflict: locked", "", ""},
		{"425 retries", answer{code: 425}, OutcomeRetry, "http_425", "425 Too Early", "", ""},
		{"429 retries", answer{code: 429}, OutcomeRetry, "http_429", "429 Too Many Requests", "", ""},
		{"500 retries", answer{code: 500, body: "boom\n"}, OutcomeRetry, "http_500", "500 Internal Server Error: boom", "", ""},
		{"502 retries", answer{code: 502}, OutcomeRetry, "http_502", "502 Bad Gateway", "", ""},
		{"503 retries", answer{code: 503, body: "down"}, OutcomeRetry, "http_503", "503 Service Unavailable: down", "", ""},
		{"504 retries", answer{code: 504}, OutcomeRetry, "http_504", "504 Gateway Timeout", "", ""},
		{"599 retries", answer{code: 599}, OutcomeRetry, "http_599", "599 status code 599", "", ""},
		{"400 fails", answer{code: 400, body: `{"error":"bad email"}`}, OutcomeFailed, "http_400", `400 Bad Request: {"error":"bad email"}`, "", ""},
		{"401 fails", answer{code: 401}, OutcomeFailed, "http_401", "401 Unauthorized", "", ""},
		{"403 fails", answer{code: 403}, OutcomeFailed, "http_403", "403 Forbidden", "", ""},
		{"404 fails", answer{code: 404, body: "no handler"}, OutcomeFailed, "http_404", "404 Not Found: no handler", "", ""},
		{"410 fails", answer{code: 410}, OutcomeFailed, "http_410", "410 Gone", "", ""},
		{"413 fails", answer{code: 413}, OutcomeFailed, "http_413", "413 Request Entity Too Large", "", ""},
		{"422 fails", answer{code: 422}, OutcomeFailed, "http_422", "422 Unprocessable Entity", "", ""},
		{"301 fails without following", answer{code: 301, header: map[string]string{"Location": "/moved"}}, OutcomeFailed, "redirect_301", "301 Moved Permanently", "", ""},
		{"302 fails without following", answer{code: 302, header: map[string]string{"Location": "/moved"}}, OutcomeFailed, "redirect_302", "302 Found", "", ""},
		{"303 fails without following", answer{code: 303, header: map[string]string{"Location": "/moved"}}, OutcomeFailed, "redirect_303", "303 See Other", "", ""},
		{"304 fails", answer{code: 304}, OutcomeFailed, "redirect_304", "304 Not Modified", "", ""},
		{"307 fails without following", answer{code: 307, header: map[string]string{"Location": "/moved"}}, OutcomeFailed, "redirect_307", "307 Temporary Redirect", "", ""},
		{"308 fails without following", answer{code: 308, header: map[string]string{"Location": "/moved"}}, OutcomeFailed, "redirect_308", "308 Permanent Redirect", "", ""},
		{"500 with No-Retry fails", answer{code: 500, header: noRetry, body: "corrupt input"}, OutcomeFailed, "no_retry", "500 Internal Server Error: corrupt input", "", ""},
		{"503 with No-Retry fails despite Retry-After", answer{code: 503, header: map[string]string{HeaderNoRetry: "true", "Retry-After": "5"}}, OutcomeFailed, "no_retry", "503 Service Unavailable", "", ""},
		{"429 with No-Retry TRUE fails", answer{code: 429, header: map[string]string{HeaderNoRetry: "TRUE"}}, OutcomeFailed, "no_retry", "429 Too Many Requests", "", ""},
		{"409 with No-Retry fails", answer{code: 409, header: noRetry}, OutcomeFailed, "no_retry", "409 Conflict", "", ""},
		{"302 with No-Retry fails", answer{code: 302, header: map[string]string{HeaderNoRetry: "true", "Location": "/moved"}}, OutcomeFailed, "no_retry", "302 Found", "", ""},
		{"500 with No-Retry false retries", answer{code: 500, header: map[string]string{HeaderNoRetry: "false"}}, OutcomeRetry, "http_500", "500 Internal Server Error", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var movedHits atomic.Int32
			inner := tt.answer.handler()
			a := setup(t, func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/moved" {
					movedHits.Add(1)
					w.WriteHeader(http.StatusOK)
					return
				}
				inner(w, r)
			})
			res := a.d.Dispatch(context.Background(), minimalJob(), a.target())
			require.Equal(t, tt.outcome, res.Outcome)
			require.Equal(t, tt.answer.code, res.StatusCode)
			require.Equal(t, tt.label, res.Label)
			require.Equal(t, tt.error, res.Error)
			if tt.result == "" {
				require.Nil(t, res.Result)
			} else {
				require.Equal(t, tt.result, string(res.Result))
			}
			require.Equal(t, tt.note, res.ResultNote)
			require.True(t, res.RetryAfter.IsZero())
			require.False(t, res.ConnRefused)
			require.Positive(t, res.Duration)
			require.Zero(t, movedHits.Load(), "redirects are never followed")
			require.Len(t, a.requests, 1, "exactly one request reaches the app")
		})
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		code       int
		retryAfter string
		want       time.Time
	}{
		{"429 delay seconds", 429, "120", fixedNow.Add(120 * time.Second)},
		{"503 delay seconds", 503, "5", fixedNow.Add(5 * time.Second)},
		{"503 zero seconds", 503, "0", fixedNow},
		{"429 HTTP date", 429, fixedNow.Add(time.Hour).Format(http.TimeFormat), fixedNow.Add(time.Hour)},
		{"503 HTTP date", 503, fixedNow.Add(90 * time.Second).Format(http.TimeFormat), fixedNow.Add(90 * time.Second)},
		{"503 obsolete RFC 850 date", 503, fixedNow.Add(time.Minute).Format(time.RFC850), fixedNow.Add(time.Minute)},
		{"huge delay is clamped to a day", 429, "99999999999999", fixedNow.Add(24 * time.Hour)},
		{"negative seconds ignored", 503, "-5", time.Time{}},
		{"garbage ignored", 429, "soon", time.Time{}},
		{"500 Retry-After ignored", 500, "10", time.Time{}},
		{"502 Retry-After ignored", 502, "10", time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := setup(t, answer{code: tt.code, header: map[string]string{"Retry-After": tt.retryAfter}}.handler())
			res := a.d.Dispatch(context.Background(), minimalJob(), a.target())
			require.Equal(t, OutcomeRetry, res.Outcome)
			require.True(t, tt.want.Equal(res.RetryAfter), "want %v, got %v", tt.want, res.RetryAfter)
		})
	}
}

func TestErrorKeepsStatusLineAndFirst4KiBOfBody(t *testing.T) {
	t.Parallel()
	fourK := strings.Repeat("x", 4096)
	tests := []struct {
		name string
		body string
		want string
	}{
		{"long body truncated", fourK + strings.Repeat("y", 6000), "500 Internal Server Error: " + fourK},
		{"exactly 4 KiB kept", fourK, "500 Internal Server Error: " + fourK},
		{"rune cut by the limit dropped", strings.Repeat("a", 4095) + "é and more", "500 Internal Server Error: " + strings.Repeat("a", 4095)},
		{"NUL and invalid UTF-8 replaced", "bad\x00byte\xff", "500 Internal Server Error: bad\uFFFDbyte\uFFFD"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := setup(t, answer{code: 500, body: tt.body}.handler())
			res := a.d.Dispatch(context.Background(), minimalJob(), a.target())
			require.Equal(t, OutcomeRetry, res.Outcome)
			require.Equal(t, tt.want, res.Error)
		})
	}
}

func TestResultSizeCap(t *testing.T) {
	t.Parallel()
	sixteen := `"` + strings.Repeat("a", 14) + `"`
	tests := []struct {
		name    string
		max     int64
		body    string
		chunked bool
		result  string
		note    string
	}{
		{"at the cap stored", 16, sixteen, false, sixteen, ""},
		{"one byte over not stored, size named", 16, sixteen + " ", false, "",
			"result not stored: response body of 17 bytes exceeds max_result_bytes (16)"},
		{"far over with known length", 16, `"` + strings.Repeat("b", 5000) + `"`, false, "",
			"result not stored: response body of 5002 bytes exceeds max_result_bytes (16)"},
		{"over without Content-Length", 16, `"` + strings.Repeat("b", 100) + `"`, true, "",
			"result not stored: response body of more than 16 bytes exceeds max_result_bytes (16)"},
		{"zero max stores nothing and says nothing", 0, sixteen, false, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := setup(t, func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				if tt.chunked {
					w.WriteHeader(http.StatusOK)
					_ = http.NewResponseController(w).Flush()
				} else {
					w.Header().Set("Content-Length", strconv.Itoa(len(tt.body)))
				}
				_, _ = w.Write([]byte(tt.body))
			})
			tg := a.target()
			tg.MaxResultBytes = tt.max
			res := a.d.Dispatch(context.Background(), minimalJob(), tg)
			require.Equal(t, OutcomeCompleted, res.Outcome)
			if tt.result == "" {
				require.Nil(t, res.Result)
			} else {
				require.Equal(t, tt.result, string(res.Result))
			}
			require.Equal(t, tt.note, res.ResultNote)
		})
	}
}

func TestHandlerURL(t *testing.T) {
	t.Parallel()
	tests := []struct{ template, queue, want string }{
		{"http://127.0.0.1:8080/jobs/{queue}", "emails", "http://127.0.0.1:8080/jobs/emails"},
		{"http://127.0.0.1:8080/jobs/{queue}", "a b/c?d", "http://127.0.0.1:8080/jobs/a%20b%2Fc%3Fd"},
		{"http://127.0.0.1:8080/mail", "emails", "http://127.0.0.1:8080/mail"},
		{"http://app/{queue}/run/{queue}", "q1", "http://app/q1/run/q1"},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, HandlerURL(tt.template, tt.queue))
	}
}
