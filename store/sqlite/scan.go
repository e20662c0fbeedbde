package sqlite

import (
	"database/sql"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/hammerwork-go/hw-agent/store"
)

// ts formats a time for storage, in the text form store.SQLTime reads.
func ts(t time.Time) string { return store.UTC(t).Format(store.TextTimeFormat) }

// tsOrNow formats t, or now when t is zero.
func tsOrNow(t, now time.Time) string {
	if t.IsZero() {
		return ts(now)
	}
	return ts(t)
}

func parseNullTS(s sql.NullString) (*time.Time, error) {
	if !s.Valid {
		return nil, nil
	}
	t, err := store.ParseTextTime(s.String)
	if err != nil {
		return nil, err
	}
	return &t, nil
}

// nullString stores an empty optional string as NULL.
func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// nullSeconds stores a zero duration as NULL.
func nullSeconds(d time.Duration) any {
	if d == 0 {
		return nil
	}
	return d.Seconds()
}

func nullUUID(id *uuid.UUID) any {
	if id == nil {
		return nil
	}
	return id.String()
}

// jobColumns is every column of hammerwork_jobs in store.ScanSQLJob's order.
var jobColumns = strings.Join(store.JobColumns, ", ")
