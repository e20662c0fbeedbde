package store

import (
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hammerwork-go/hw-agent/job"
)

var queueName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$`)

// ValidQueueName reports whether name is a queue name: 1..128 of letters,
// digits, '_', '.', ':' and '-', starting with a letter or digit. The name
// appears in URLs and metric labels, so it is kept plain.
func ValidQueueName(name string) bool { return queueName.MatchString(name) }

// Validate reports the first problem with a new job, naming the field.
// The returned error wraps ErrInvalid.
func (n NewJob) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
	}
	if n.Queue == "" {
		return bad("queue is required")
	}
	if !ValidQueueName(n.Queue) {
		return bad("queue %q is not a valid name (letters, digits, '_', '.', ':', '-'; at most 128)", n.Queue)
	}
	if len(n.Payload) > 0 {
		if err := CheckJSON(n.Payload); err != nil {
			return bad("payload %v", err)
		}
	}
	if err := CheckHeaderValue("correlation_id", n.CorrelationID); err != nil {
		return err
	}
	if n.Priority < job.PriorityBackground || n.Priority > job.PriorityCritical {
		return bad("priority %d is out of range 0..4", n.Priority)
	}
	if n.MaxAttempts < 0 {
		return bad("max_attempts %d must be at least 1", n.MaxAttempts)
	}
	if n.Timeout < 0 {
		return bad("timeout must not be negative")
	}
	if n.ResultTTL < 0 {
		return bad("result_ttl must not be negative")
	}
	if n.RetryPolicy != nil {
		if err := n.RetryPolicy.Validate(); err != nil {
			return bad("%v", err)
		}
	}
	if len(n.UniqueKey) > 255 {
		return bad("unique_key is longer than 255 bytes")
	}
	// The key is a text column: PostgreSQL refuses bytes that are not
	// UTF-8 and NUL in any text, which would make the enqueue a 500.
	if !utf8.ValidString(n.UniqueKey) {
		return bad("unique_key is not valid UTF-8")
	}
	if i := strings.IndexByte(n.UniqueKey, 0); i >= 0 {
		return bad("unique_key holds a NUL byte at byte %d", i)
	}
	return nil
}

// CheckHeaderValue rejects a control character (CR, LF, tab, NUL, DEL, C1)
// in a name the agent sends to the app in a request header (the
// correlation id; a workflow's name and its step names, of which a batch
// step's name is its batch's): net/http refuses such a header, so the job
// could never be delivered. A batch created through the API follows the
// same rule, so a batch name means the same wherever it came from. The
// error names the field and wraps ErrInvalid.
func CheckHeaderValue(field, v string) error {
	i := strings.IndexFunc(v, unicode.IsControl)
	if i < 0 {
		return nil
	}
	r := []rune(v[i:])[0]
	return fmt.Errorf("%w: %s holds the control character %U at byte %d; it is sent to the app in a request header, which cannot carry control characters", ErrInvalid, field, r, i)
}

// DefaultListLimit and MaxListLimit bound List pages.
const (
	DefaultListLimit = 50
	MaxListLimit     = 1000
)

// ListLimit applies the documented default and cap.
func (p ListParams) ListLimit() int {
	switch {
	case p.Limit <= 0:
		return DefaultListLimit
	case p.Limit > MaxListLimit:
		return MaxListLimit
	}
	return p.Limit
}

// UTC normalises a time for storage: UTC, microsecond precision (what every
// backend can keep), so a value read back equals the value written.
func UTC(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }
