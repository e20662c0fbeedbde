package store

import (
	"context"
	"database/sql"

	"github.com/google/uuid"
)

// SQLQueryer is a *sql.DB, *sql.Conn or *sql.Tx: what the backends built on
// database/sql (MySQL, SQLite) query through.
type SQLQueryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// QueryStrings runs a query that returns one text column and collects it.
func QueryStrings(ctx context.Context, q SQLQueryer, query string, args ...any) ([]string, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// QueryIDs runs a query that returns one id column and collects it; none is
// an empty slice.
func QueryIDs(ctx context.Context, q SQLQueryer, query string, args ...any) ([]uuid.UUID, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return CollectIDs(rows)
}
