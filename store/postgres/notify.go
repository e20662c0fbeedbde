package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// wakeBuffer is how many queue names WaitForJobs holds for a slow reader.
const wakeBuffer = 64

// WaitForJobs listens on NotifyChannel and sends the queue name of every
// Enqueue batch, so an idle producer can lease at once instead of waiting
// for its next poll. It is a hint, not a guarantee: a name is dropped when
// the reader is wakeBuffer names behind, and the channel closes when ctx
// ends, the store closes or the listening connection fails; producers keep
// polling either way and may call WaitForJobs again.
//
// The listener uses a connection of its own, outside the pool, so it never
// takes a slot that leasing needs.
func (s *Store) WaitForJobs(ctx context.Context) (<-chan string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errStoreClosed
	}
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return nil, wrap(err, "connect listener")
	}
	if _, err := conn.Exec(ctx, "LISTEN "+NotifyChannel); err != nil {
		closeConn(conn)
		return nil, fmt.Errorf("listen on %s: %w", NotifyChannel, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	stopOnClose := context.AfterFunc(s.closing, cancel)
	wake := make(chan string, wakeBuffer)
	s.listeners.Add(1)
	go func() {
		defer s.listeners.Done()
		defer close(wake)
		defer stopOnClose()
		defer cancel()
		defer closeConn(conn)
		for {
			n, err := conn.WaitForNotification(ctx)
			if err != nil {
				return
			}
			select {
			case wake <- n.Payload:
			default:
			}
		}
	}()
	return wake, nil
}

var errStoreClosed = errors.New("postgres store is closed")

// closeConn says goodbye to the server, but not for long when the network
// is what failed.
func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = conn.Close(ctx)
}
