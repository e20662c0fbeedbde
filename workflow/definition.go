package workflow

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/goccy/go-yaml"

	"github.com/hammerwork-go/hw-agent/job"
)

// Definition files are one JSON document (the body of POST /v1/workflows
// and the input of `hw-agent workflow create --file`), or the same document
// in YAML. Decoding is by hand, field by field, rather than with
// encoding/json's struct decoding, because users need the path of the bad
// field ("jobs[1].timeout: invalid duration \"soon\"") and encoding/json
// reports neither array indices nor which field a text unmarshaller failed
// on. Unknown and repeated fields are errors: a typo ("depend_on") must not
// silently drop an edge.

// ParseFile parses a definition by its file name's extension: .json, .yaml
// or .yml. It does not read the file; the caller does the I/O.
func ParseFile(name string, b []byte) (Workflow, error) {
	switch ext := strings.ToLower(filepath.Ext(name)); ext {
	case ".json":
		return ParseJSON(b)
	case ".yaml", ".yml":
		return ParseYAML(b)
	default:
		return Workflow{}, fmt.Errorf("%w: workflow file %q: unknown extension %q (want .json, .yaml or .yml)", ErrInvalid, name, ext)
	}
}

// ParseJSON decodes and validates a JSON definition. Every error is a
// *ValidationError whose problems carry paths; a document of the wrong
// shape (syntax, types, unknown fields) also matches ErrMalformed.
func ParseJSON(b []byte) (Workflow, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return Workflow{}, malformedDocument("empty document")
	}
	if err := checkUTF8(b); err != nil {
		return Workflow{}, err
	}
	if !json.Valid(b) {
		var v any
		return Workflow{}, malformedDocument(jsonSyntaxMessage(b, json.Unmarshal(b, &v)))
	}
	return decodeDefinition(b)
}

// ParseYAML decodes and validates a YAML definition. The YAML is first
// turned into JSON (map keys become strings; values JSON cannot hold, such
// as .inf, are errors with their path), so payloads are JSON like the API's
// and one decoder gives both formats the same paths and messages.
func ParseYAML(b []byte) (Workflow, error) {
	if err := checkUTF8(b); err != nil {
		return Workflow{}, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b), yaml.UseOrderedMap())
	var doc any
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return Workflow{}, malformedDocument("empty document")
		}
		return Workflow{}, malformedDocument("invalid YAML: " + yaml.FormatError(err, false, false))
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return Workflow{}, malformedDocument("a definition file holds one YAML document, found more")
	}
	if n := yamlValues(doc, map[yamlShared]int{}); n > maxYAMLValues {
		return Workflow{}, malformedDocument(fmt.Sprintf("with its aliases expanded the document holds more than %d values: each alias repeats its anchor's whole value", maxYAMLValues))
	}
	var d decoder
	var buf bytes.Buffer
	d.yamlToJSON("", doc, &buf)
	if err := d.ps.err(); err != nil {
		return Workflow{}, err
	}
	return decodeDefinition(buf.Bytes())
}

func malformedDocument(msg string) error {
	return &ValidationError{Problems: []Problem{{Message: msg, Err: ErrMalformed}}}
}

// checkUTF8 rejects a document that is not UTF-8, as both formats require.
// Decoding would otherwise keep the bytes in payloads and metadata, which a
// PostgreSQL JSONB column refuses, and replace them in names.
func checkUTF8(b []byte) error {
	if utf8.Valid(b) {
		return nil
	}
	for off := 0; off < len(b); {
		r, size := utf8.DecodeRune(b[off:])
		if r == utf8.RuneError && size == 1 {
			line, col := position(b, off)
			return malformedDocument(fmt.Sprintf("byte 0x%02x at line %d, column %d is not UTF-8", b[off], line, col))
		}
		off += size
	}
	return nil
}

// position is the line and column of byte offset off, which is what a
// person editing a file can use.
func position(b []byte, off int) (line, col int) {
	line = 1 + bytes.Count(b[:off], []byte("\n"))
	col = off - bytes.LastIndexByte(b[:off], '\n')
	return line, col
}

// jsonSyntaxMessage places a syntax error by line and column.
func jsonSyntaxMessage(b []byte, err error) string {
	var se *json.SyntaxError
	if !errors.As(err, &se) {
		return fmt.Sprintf("invalid JSON: %v", err)
	}
	// Offset counts the bytes read, the offending one included.
	line, col := position(b, int(min(max(se.Offset-1, 0), int64(len(b)))))
	return fmt.Sprintf("invalid JSON at line %d, column %d: %v", line, col, se)
}

// decodeDefinition decodes a syntactically valid JSON document and, when
// every field decoded, validates the result: validating a half-decoded
// definition would add problems that are only echoes of the decode errors.
func decodeDefinition(b []byte) (Workflow, error) {
	var d decoder
	var w Workflow
	d.object("", b, map[string]func(string, json.RawMessage){
		"name":           func(p string, v json.RawMessage) { d.str(p, v, &w.Name) },
		"description":    func(p string, v json.RawMessage) { d.str(p, v, &w.Description) },
		"failure_policy": func(p string, v json.RawMessage) { d.failurePolicy(p, v, &w.FailurePolicy) },
		"priority":       func(p string, v json.RawMessage) { w.Priority = d.priority(p, v) },
		"timeout":        func(p string, v json.RawMessage) { d.duration(p, v, &w.Timeout) },
		"trace_id":       func(p string, v json.RawMessage) { d.str(p, v, &w.TraceID) },
		"correlation_id": func(p string, v json.RawMessage) { d.str(p, v, &w.CorrelationID) },
		"metadata":       func(_ string, v json.RawMessage) { w.Metadata = v },
		"jobs":           func(p string, v json.RawMessage) { w.Steps = d.steps(p, v) },
	})
	if err := d.ps.err(); err != nil {
		return Workflow{}, err
	}
	if err := w.Validate(); err != nil {
		return Workflow{}, err
	}
	return w, nil
}

// decoder collects problems while decoding, so one pass reports them all.
type decoder struct{ ps problems }

// fail reports a value that is well formed but wrong ("soon" as a duration).
func (d *decoder) fail(path, format string, a ...any) { d.ps.add(ErrInvalid, path, format, a...) }

// malformed reports a document of the wrong shape: a wrong JSON type, an
// unknown or repeated field.
func (d *decoder) malformed(path, format string, a ...any) {
	d.ps.add(ErrMalformed, path, format, a...)
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func indexPath(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

// kind names a JSON value's type for messages ("want a string, got number").
func kind(v json.RawMessage) string {
	t := bytes.TrimSpace(v)
	if len(t) == 0 {
		return "nothing"
	}
	switch t[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	return "number"
}

func isNull(v json.RawMessage) bool { return kind(v) == "null" }

// object walks one JSON object in document order, calling the field's
// decoder for each known key that is not null (null means absent) and
// reporting unknown and repeated keys.
func (d *decoder) object(path string, v json.RawMessage, fields map[string]func(string, json.RawMessage)) {
	if k := kind(v); k != "object" {
		d.malformed(path, "want an object, got %s", k)
		return
	}
	dec := json.NewDecoder(bytes.NewReader(v))
	if _, err := dec.Token(); err != nil {
		d.malformed(path, "invalid JSON: %v", err)
		return
	}
	seen := make(map[string]bool, len(fields))
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			d.malformed(path, "invalid JSON: %v", err)
			return
		}
		key, _ := tok.(string)
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			d.malformed(path, "invalid JSON: %v", err)
			return
		}
		p := joinPath(path, key)
		fn, known := fields[key]
		switch {
		case !known:
			d.malformed(p, "unknown field")
		case seen[key]:
			d.malformed(p, "field appears twice")
		case !isNull(val):
			fn(p, val)
		}
		seen[key] = true
	}
}

func (d *decoder) str(path string, v json.RawMessage, dst *string) {
	if err := json.Unmarshal(v, dst); err != nil {
		d.malformed(path, "want a string, got %s", kind(v))
	}
}

func (d *decoder) failurePolicy(path string, v json.RawMessage, dst *FailurePolicy) {
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		d.malformed(path, "want a string, got %s", kind(v))
		return
	}
	p, err := ParseFailurePolicy(s)
	if err != nil {
		d.fail(path, "%v", err)
		return
	}
	*dst = p
}

func (d *decoder) duration(path string, v json.RawMessage, dst *job.Duration) {
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		d.malformed(path, "want a duration string such as \"30s\", got %s %s", kind(v), v)
		return
	}
	if err := dst.UnmarshalText([]byte(s)); err != nil {
		d.fail(path, "%v", err)
	}
}

func (d *decoder) priority(path string, v json.RawMessage) *job.Priority {
	if k := kind(v); k != "string" && k != "number" {
		d.malformed(path, "want a priority name or number, got %s", k)
		return nil
	}
	var p job.Priority
	if err := p.UnmarshalJSON(v); err != nil {
		d.fail(path, "%v", err)
		return nil
	}
	return &p
}

func (d *decoder) integer(path string, v json.RawMessage, dst *int) {
	n, err := strconv.Atoi(string(bytes.TrimSpace(v)))
	if err != nil {
		d.malformed(path, "want an integer, got %s %s", kind(v), v)
		return
	}
	*dst = n
}

func (d *decoder) float(path string, v json.RawMessage) (float64, bool) {
	if kind(v) != "number" {
		d.malformed(path, "want a number, got %s", kind(v))
		return 0, false
	}
	f, err := strconv.ParseFloat(string(bytes.TrimSpace(v)), 64)
	if err != nil {
		d.malformed(path, "want a number, got %s", v)
		return 0, false
	}
	return f, true
}

func (d *decoder) array(path string, v json.RawMessage) []json.RawMessage {
	var items []json.RawMessage
	if err := json.Unmarshal(v, &items); err != nil {
		d.malformed(path, "want an array, got %s", kind(v))
		return nil
	}
	return items
}

func (d *decoder) steps(path string, v json.RawMessage) []Step {
	items := d.array(path, v)
	steps := make([]Step, len(items))
	for i, item := range items {
		d.step(indexPath(path, i), item, &steps[i])
	}
	return steps
}

func (d *decoder) step(path string, v json.RawMessage, s *Step) {
	d.object(path, v, map[string]func(string, json.RawMessage){
		"name":         func(p string, v json.RawMessage) { d.str(p, v, &s.Name) },
		"queue":        func(p string, v json.RawMessage) { d.str(p, v, &s.Queue) },
		"payload":      func(_ string, v json.RawMessage) { s.Payload = v },
		"depends_on":   func(p string, v json.RawMessage) { s.DependsOn = d.names(p, v) },
		"condition":    func(p string, v json.RawMessage) { d.str(p, v, &s.Condition) },
		"max_attempts": func(p string, v json.RawMessage) { d.integer(p, v, &s.MaxAttempts) },
		"timeout":      func(p string, v json.RawMessage) { d.duration(p, v, &s.Timeout) },
		"priority":     func(p string, v json.RawMessage) { s.Priority = d.priority(p, v) },
		"retry":        func(p string, v json.RawMessage) { s.Retry = d.retry(p, v) },
		"delay":        func(p string, v json.RawMessage) { d.duration(p, v, &s.Delay) },
		"result_ttl":   func(p string, v json.RawMessage) { d.duration(p, v, &s.ResultTTL) },
		"batch":        func(p string, v json.RawMessage) { s.Batch = d.array(p, v) },
	})
}

func (d *decoder) names(path string, v json.RawMessage) []string {
	items := d.array(path, v)
	names := make([]string, len(items))
	for i, item := range items {
		d.str(indexPath(path, i), item, &names[i])
	}
	return names
}

func (d *decoder) retry(path string, v json.RawMessage) *job.RetryPolicy {
	var r job.RetryPolicy
	d.object(path, v, map[string]func(string, json.RawMessage){
		"strategy":  func(p string, v json.RawMessage) { d.str(p, v, &r.Strategy) },
		"initial":   func(p string, v json.RawMessage) { d.duration(p, v, &r.Initial) },
		"increment": func(p string, v json.RawMessage) { d.duration(p, v, &r.Increment) },
		"multiplier": func(p string, v json.RawMessage) {
			if f, ok := d.float(p, v); ok {
				r.Multiplier = f
			}
		},
		"max": func(p string, v json.RawMessage) { d.duration(p, v, &r.Max) },
		"jitter": func(p string, v json.RawMessage) {
			if f, ok := d.float(p, v); ok {
				r.Jitter = &f
			}
		},
		"jitter_mode": func(p string, v json.RawMessage) { d.str(p, v, &r.JitterMode) },
	})
	return &r
}

// maxYAMLValues bounds the values of a YAML document with its aliases
// expanded: four million, far more than a real definition holds, and still
// converted in seconds. An alias repeats its anchor's whole value, so a few
// hundred bytes of aliases of aliases ("billion laughs") would otherwise
// expand to billions of values and stall `workflow create --file`.
const maxYAMLValues = 1 << 22

// yamlShared identifies a decoded map or list: the decoder gives an alias the
// very value of its anchor, the same backing array.
type yamlShared struct {
	ptr uintptr
	len int
}

// yamlValues counts the values of v with aliases expanded, up to just past
// maxYAMLValues. Each shared map or list is counted once, so the count takes
// time linear in the document, not in its expansion.
func yamlValues(v any, seen map[yamlShared]int) int {
	var items []any
	switch x := v.(type) {
	case yaml.MapSlice:
		for _, item := range x {
			items = append(items, item.Value)
		}
	case []any:
		items = x
	default:
		return 1
	}
	key := yamlShared{reflect.ValueOf(v).Pointer(), len(items)}
	if n, ok := seen[key]; ok {
		return n
	}
	n := 1 + len(items)
	for _, item := range items {
		n = min(n+yamlValues(item, seen)-1, maxYAMLValues+1)
	}
	seen[key] = n
	return n
}

// yamlToJSON writes a decoded YAML value as JSON, keeping map order.
func (d *decoder) yamlToJSON(path string, v any, buf *bytes.Buffer) {
	switch x := v.(type) {
	case yaml.MapSlice:
		buf.WriteByte('{')
		for i, item := range x {
			key, ok := yamlKey(item.Key)
			if !ok {
				d.malformed(path, "map key %v of type %T cannot be a JSON object key", item.Key, item.Key)
				continue
			}
			if i > 0 {
				buf.WriteByte(',')
			}
			k, _ := json.Marshal(key)
			buf.Write(k)
			buf.WriteByte(':')
			d.yamlToJSON(joinPath(path, key), item.Value, buf)
		}
		buf.WriteByte('}')
	case []any:
		buf.WriteByte('[')
		for i, item := range x {
			if i > 0 {
				buf.WriteByte(',')
			}
			d.yamlToJSON(indexPath(path, i), item, buf)
		}
		buf.WriteByte(']')
	case float64:
		if math.IsInf(x, 0) || math.IsNaN(x) {
			d.unrepresentable(path, "%v cannot be represented in JSON", x)
			buf.WriteString("null")
			return
		}
		d.marshal(path, x, buf)
	default:
		d.marshal(path, x, buf)
	}
}

// unrepresentable reports a YAML value JSON has no form for: invalid inside
// the definition, where the path names it; at the root, a document that is
// not a definition at all (".inf"), so malformed.
func (d *decoder) unrepresentable(path, format string, a ...any) {
	if path == "" {
		d.malformed(path, "the document is not a mapping: "+format, a...)
		return
	}
	d.fail(path, format, a...)
}

func (d *decoder) marshal(path string, v any, buf *bytes.Buffer) {
	b, err := json.Marshal(v)
	if err != nil {
		d.unrepresentable(path, "value of type %T cannot be represented in JSON: %v", v, err)
		buf.WriteString("null")
		return
	}
	buf.Write(b)
}

// yamlKey turns a scalar YAML key into a JSON object key ("1: x" -> "1").
func yamlKey(k any) (string, bool) {
	switch x := k.(type) {
	case string:
		return x, true
	case nil:
		return "null", true
	case bool, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64:
		return fmt.Sprint(x), true
	}
	return "", false
}
