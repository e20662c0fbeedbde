package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/hammerwork-go/hw-agent/store"
)

// Error codes clients branch on; see the package doc.
const (
	codeBadRequest       = "bad_request"
	codeUnauthorized     = "unauthorized"
	codeNotFound         = "not_found"
	codeMethodNotAllowed = "method_not_allowed"
	codeConflict         = "conflict"
	codeStaleLease       = "stale_lease"
	codeTooLarge         = "payload_too_large"
	codeInvalid          = "invalid"
	codeNotSupported     = "not_supported"
	codeInternal         = "internal"
	codeNotReady         = "not_ready"
	codeNotMigrated      = "not_migrated"
)

// apiError is an error a handler has already classified.
type apiError struct {
	Status  int
	Code    string
	Message string
	Details any
}

func (e *apiError) Error() string { return e.Message }

// errorBody is the wire shape of every error response.
type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Details any    `json:"details,omitempty"`
	} `json:"error"`
}

func badRequest(format string, a ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Code: codeBadRequest, Message: fmt.Sprintf(format, a...)}
}

// invalid wraps store.ErrInvalid, so the API's own checks and the store's
// reach clients the same way, through classify.
func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: %s", store.ErrInvalid, fmt.Sprintf(format, a...))
}

func tooLarge(limit int64) *apiError {
	return &apiError{Status: http.StatusRequestEntityTooLarge, Code: codeTooLarge,
		Message: fmt.Sprintf("request body exceeds %d bytes", limit)}
}

// withoutSentinel drops a sentinel's prefix ("invalid: ") from a message: the code
// already says it, and the rest names the field.
func withoutSentinel(err, sentinel error) string {
	return strings.Replace(err.Error(), sentinel.Error()+": ", "", 1)
}

// classify maps any error to its response. It is the one place where store
// sentinels become status codes.
func classify(err error) *apiError {
	var (
		ae       *apiError
		he       *echo.HTTPError
		se       *store.StateError
		maxBytes *http.MaxBytesError
	)
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &maxBytes):
		return tooLarge(maxBytes.Limit)
	case errors.As(err, &he):
		return fromEcho(he)
	case errors.Is(err, store.ErrStaleLease):
		return &apiError{Status: http.StatusConflict, Code: codeStaleLease, Message: err.Error()}
	case errors.As(err, &se):
		return &apiError{Status: http.StatusConflict, Code: codeConflict, Message: se.Error(),
			Details: map[string]any{"status": se.Current}}
	case errors.Is(err, store.ErrConflict):
		return &apiError{Status: http.StatusConflict, Code: codeConflict, Message: err.Error()}
	case errors.Is(err, store.ErrNotFound):
		return &apiError{Status: http.StatusNotFound, Code: codeNotFound, Message: err.Error()}
	case errors.Is(err, store.ErrInvalid):
		return &apiError{Status: http.StatusUnprocessableEntity, Code: codeInvalid, Message: withoutSentinel(err, store.ErrInvalid)}
	case errors.Is(err, store.ErrUnsupported):
		return &apiError{Status: http.StatusUnprocessableEntity, Code: codeNotSupported, Message: withoutSentinel(err, store.ErrUnsupported)}
	case errors.Is(err, store.ErrNotMigrated):
		return &apiError{Status: http.StatusServiceUnavailable, Code: codeNotMigrated, Message: store.ErrNotMigrated.Error()}
	}
	return &apiError{Status: http.StatusInternalServerError, Code: codeInternal, Message: "internal error (see the agent's log)"}
}

// fromEcho covers what echo itself rejects: unknown routes, wrong methods.
func fromEcho(he *echo.HTTPError) *apiError {
	msg := http.StatusText(he.Code)
	if m, ok := he.Message.(string); ok && m != "" {
		msg = m
	}
	code := codeBadRequest
	switch he.Code {
	case http.StatusNotFound:
		code, msg = codeNotFound, "no such route"
	case http.StatusMethodNotAllowed:
		code = codeMethodNotAllowed
	case http.StatusRequestEntityTooLarge:
		code = codeTooLarge
	case http.StatusUnauthorized:
		code = codeUnauthorized
	default:
		if he.Code >= 500 {
			code = codeInternal
		}
	}
	return &apiError{Status: he.Code, Code: code, Message: msg}
}

// handleError is echo's HTTPErrorHandler: every error response is written here.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	ae := classify(err)
	r := c.Request()
	switch {
	case isClientGone(c, err):
		s.log.Debug("client went away", "method", r.Method, "path", r.URL.Path, "err", err)
	case ae.Status >= 500 && ae.Code != codeNotReady:
		s.log.Error("api request failed", "method", r.Method, "path", r.URL.Path, "status", ae.Status, "err", err)
	default:
		s.log.Debug("api request rejected", "method", r.Method, "path", r.URL.Path, "status", ae.Status, "code", ae.Code, "err", err)
	}
	if ae.Status == http.StatusUnauthorized {
		c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="hw-agent"`)
	}
	var body errorBody
	body.Error.Code, body.Error.Message, body.Error.Details = ae.Code, ae.Message, ae.Details
	if r.Method == http.MethodHead {
		err = c.NoContent(ae.Status)
	} else {
		err = c.JSON(ae.Status, body)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		s.log.Warn("write error response", "err", err)
	}
}
