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
					io.Copy(io.Discard, os.Stdin)
					cancel()
				}()
			}
			srv := &http.Server{
				Handler:           http.HandlerFunc(noopHandler),
				ReadHeaderTimeout: 5 * time.Second,
				ErrorLog:          slog.NewLogLogger(slog.DiscardHandler, slog.LevelError),
			}
			go srv.Serve(ln)
			<-ctx.Done()
			return srv.Close()
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
	io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, "{}")
}
