package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
)

// decodeJSON reads exactly one JSON object into v, rejecting unknown fields
// so a misspelt option ("max_attempt") fails loudly instead of being ignored.
func decodeJSON(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err, "")
	}
	var extra json.RawMessage
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
		return nil
	case err != nil && !isSyntax(err):
		return decodeError(err, "")
	}
	return badRequest("request body must hold a single JSON object")
}

// decodeStrict decodes an embedded JSON value (such as retry) with the same
// unknown-field rule, naming fields under prefix.
func decodeStrict(raw json.RawMessage, v any, prefix string) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err, prefix)
	}
	return nil
}

func isSyntax(err error) bool {
	var se *json.SyntaxError
	return errors.As(err, &se)
}

// decodeError turns a json.Decoder error into a 400 that names the field, or
// a 413 when the body crossed the size limit while being read. Errors from a
// field's own parser (a bad duration inside retry) are 422: the JSON was well
// formed but the value is not.
func decodeError(err error, prefix string) error {
	var (
		maxBytes *http.MaxBytesError
		syntax   *json.SyntaxError
		typ      *json.UnmarshalTypeError
	)
	field := func(name string) string {
		if prefix == "" {
			return name
		}
		return prefix + "." + name
	}
	switch {
	case errors.As(err, &maxBytes):
		return tooLarge(maxBytes.Limit)
	case errors.Is(err, io.EOF):
		return badRequest("request body is empty: want a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("malformed JSON: unexpected end of input")
	case errors.As(err, &syntax):
		return badRequest("malformed JSON at byte %d: %v", syntax.Offset, syntax)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return badRequest("%s must be %s, got %s", nameOr(prefix, "request body"), jsonKind(typ.Type.Kind().String()), typ.Value)
		}
		e := badRequest("%s must be %s, got %s", field(typ.Field), jsonKind(typ.Type.Kind().String()), typ.Value)
		e.Details = map[string]any{"field": field(typ.Field)}
		return e
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		if n, uerr := strconv.Unquote(name); uerr == nil {
			name = n
		}
		e := badRequest("unknown field %q", field(name))
		e.Details = map[string]any{"field": field(name)}
		return e
	}
	if prefix != "" {
		return invalid("%s: %v", prefix, err)
	}
	return invalid("%v", err)
}

func nameOr(name, fallback string) string {
	if name == "" {
		return fallback
	}
	return name
}

// jsonKind names a Go kind the way a JSON client thinks of it.
func jsonKind(kind string) string {
	switch {
	case strings.HasPrefix(kind, "int"), strings.HasPrefix(kind, "uint"), strings.HasPrefix(kind, "float"):
		return "a number"
	case kind == "string":
		return "a string"
	case kind == "bool":
		return "a boolean"
	case kind == "slice", kind == "array":
		return "an array"
	case kind == "map", kind == "struct":
		return "an object"
	}
	return "a " + kind
}

// isNull reports a JSON value that is absent or null.
func isNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || bytes.Equal(t, []byte("null"))
}

func pathID(c echo.Context) (uuid.UUID, error) {
	id, err := uuid.Parse(c.Param("id"))
	if err != nil {
		return uuid.Nil, badRequest("job id %q is not a UUID", c.Param("id"))
	}
	return id, nil
}
