package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/hammerwork-go/hw-agent/dispatch"
)

// benchAppCommand is the no-op app `bench` runs as a child process: it prints
// its address on the first stdout line and answers 200 {} to every POST.
// With --record it also serves GET /records: when each request arrived and
// was answered, by the app's own clock, so latency is measured where the
// app sees it rather than from the database's timestamps.
func (c *cli) benchAppCommand() *cobra.Command {
	var (
		listen         string
		exitOnStdinEOF bool
		record         bool
	)
	cmd := &cobra.Command{
		Use:    "bench-app",
		Short:  "No-op app for bench (internal)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("--listen %s: %w", listen, err)
			}
			fmt.Fprintln(c.stdout, ln.Addr().String())
			if exitOnStdinEOF {
				var cancel context.CancelFunc
				ctx, cancel = context.WithCancel(ctx)
				go func() {
					_, _ = io.Copy(io.Discard, os.Stdin) // any end of stdin, EOF or error, means bench is gone
					cancel()
				}()
			}
			var handler http.Handler = http.HandlerFunc(noopHandler)
			if record {
				handler = &recordingApp{}
			}
			srv := &http.Server{
				Handler:           handler,
				ReadHeaderTimeout: 5 * time.Second,
				ErrorLog:          slog.NewLogLogger(slog.DiscardHandler, slog.LevelError),
			}
			served := make(chan error, 1)
			go func() { served <- srv.Serve(ln) }()
			select {
			case <-ctx.Done():
				return srv.Close()
			case err := <-served:
				return fmt.Errorf("serve %s: %w", ln.Addr(), err)
			}
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:0", "address to listen on")
	cmd.Flags().BoolVar(&exitOnStdinEOF, "exit-on-stdin-eof", false, "exit when stdin closes (set by bench)")
	cmd.Flags().BoolVar(&record, "record", false, "record request times and serve them on GET /records (set by bench --latency)")
	return cmd
}

// appRecord is one request the recording app answered. Times are Unix
// nanoseconds of the wall clock, which the bench process on the same host
// shares (a monotonic reading does not cross processes).
type appRecord struct {
	JobID    string `json:"job_id"`
	Arrived  int64  `json:"arrived"`
	Answered int64  `json:"answered"`
}

// recordingApp is the no-op app that remembers every request it answered.
type recordingApp struct {
	mu      sync.Mutex
	records []appRecord
}

func (a *recordingApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	arrived := time.Now().UnixNano()
	if r.Method == http.MethodGet && r.URL.Path == "/records" {
		a.mu.Lock()
		b, err := json.Marshal(a.records)
		a.mu.Unlock()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
		return
	}
	if r.Method != http.MethodPost {
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	_, _ = io.Copy(io.Discard, r.Body)
	rec := appRecord{JobID: r.Header.Get(dispatch.HeaderJobID), Arrived: arrived, Answered: time.Now().UnixNano()}
	a.mu.Lock()
	a.records = append(a.records, rec)
	a.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, "{}")
}

func noopHandler(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	// A client that hangs up mid-request is the bench's business, not the app's.
	_, _ = io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, "{}")
}
