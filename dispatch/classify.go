package dispatch

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hammerwork-go/hw-agent/store"
)

const (
	// errorBodyBytes is how much of a failure body goes into the error
	// history: enough for a stack trace's head, small enough for every row.
	errorBodyBytes = 4 << 10
	// drainBytes bounds how much of an unread body is discarded to keep the
	// connection alive; past it, closing and redialing is cheaper.
	drainBytes = 256 << 10
)

// classify turns a response into a Result, reading only as much of the body
// as it needs and draining a bounded rest so the connection is reused.
func (d *Dispatcher) classify(resp *http.Response, maxResult int64) Result {
	defer func() {
		_, _ = io.CopyN(io.Discard, resp.Body, drainBytes)
		_ = resp.Body.Close()
	}()
	code := resp.StatusCode
	res := Result{StatusCode: code}
	switch {
	case code == http.StatusAccepted:
		res.Outcome = OutcomeAccepted
		return res
	case code >= 200 && code < 300:
		res.Outcome = OutcomeCompleted
		res.Result, res.ResultNote = readResult(resp, maxResult)
		return res
	}

	res.Error = errorMessage(resp)
	switch {
	case strings.EqualFold(strings.TrimSpace(resp.Header.Get(HeaderNoRetry)), "true"):
		res.Outcome, res.Label = OutcomeFailed, LabelNoRetry
	case code >= 300 && code < 400:
		res.Outcome, res.Label = OutcomeFailed, fmt.Sprintf("redirect_%d", code)
	case Retryable(code):
		res.Outcome, res.Label = OutcomeRetry, fmt.Sprintf("http_%d", code)
		if code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable {
			res.RetryAfter = ParseRetryAfter(resp.Header.Get("Retry-After"), d.now())
		}
	default:
		res.Outcome, res.Label = OutcomeFailed, fmt.Sprintf("http_%d", code)
	}
	return res
}

// Retryable lists the statuses that say "not now" rather than "never":
// request timeout, conflict (a lock held elsewhere), too early, too many
// requests, and every server error. The webhook sink judges its receivers'
// answers by it too.
func Retryable(code int) bool {
	switch code {
	case http.StatusRequestTimeout, http.StatusConflict, http.StatusTooEarly, http.StatusTooManyRequests:
		return true
	}
	return code >= 500 && code < 600
}

// readResult reads at most maxResult+1 bytes of a success body and returns
// it when it is JSON that fits and that every backend can store (a body
// MariaDB or PostgreSQL would refuse must not fail the whole completion
// batch); otherwise nil and a note saying why, which the agent stores so a
// missing result is never a mystery.
func readResult(resp *http.Response, maxResult int64) ([]byte, string) {
	if maxResult <= 0 {
		return nil, ""
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResult+1))
	if err != nil {
		return nil, fmt.Sprintf("result not stored: reading the response body failed: %v", err)
	}
	if int64(len(body)) > maxResult {
		size := "more than " + strconv.FormatInt(maxResult, 10)
		if resp.ContentLength > maxResult {
			size = strconv.FormatInt(resp.ContentLength, 10)
		}
		return nil, fmt.Sprintf("result not stored: response body of %s bytes exceeds max_result_bytes (%d)", size, maxResult)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, ""
	}
	if err := store.CheckJSON(body); err != nil {
		return nil, fmt.Sprintf("result not stored: response body (%d bytes, Content-Type %q) %v", len(body), resp.Header.Get("Content-Type"), err)
	}
	return body, ""
}

// errorMessage is the status line and the first 4 KiB of the body, made safe
// for a text column: valid UTF-8 and no NUL bytes, which PostgreSQL rejects.
func errorMessage(resp *http.Response) string {
	status := resp.Status
	if status == "" {
		status = strconv.Itoa(resp.StatusCode) + " " + http.StatusText(resp.StatusCode)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, errorBodyBytes))
	text := strings.TrimSpace(sanitize(body))
	if text == "" {
		return status
	}
	return status + ": " + text
}

// sanitize drops a rune cut in half by the 4 KiB limit and replaces what a
// database text column cannot hold.
func sanitize(b []byte) string {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				b = b[:i]
			}
			break
		}
	}
	return store.SafeText(string(b))
}

// ParseRetryAfter reads a Retry-After header's delay-seconds or HTTP date
// as the time it names; anything else is the zero time, and the caller's own
// retry delay applies. The webhook sink reads its receivers' answers with it.
func ParseRetryAfter(v string, now time.Time) time.Time {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return time.Time{}
		}
		// Past a day the policy's max caps it anyway; clamping here avoids
		// overflowing time.Duration on absurd values.
		return now.Add(time.Duration(min(secs, 86400)) * time.Second)
	}
	if t, err := http.ParseTime(v); err == nil {
		return t
	}
	return time.Time{}
}
