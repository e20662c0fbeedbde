package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

// benchAppCommand is the no-op app `bench` runs as a child process: it prints
// its address on the first stdout line and answers 200 {} to every POST.
func (c *cli) benchAppCommand() *cobra.Command {
	var (
		listen         string
		exitOnStdinEOF bool
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
			srv := &http.Server{
				Handler:           http.HandlerFunc(noopHandler),
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
	return cmd
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
