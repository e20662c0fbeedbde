package tracing

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Exporter names accepted by Config.Exporter and OTEL_TRACES_EXPORTER.
const (
	ExporterOTLP   = "otlp"
	ExporterStdout = "stdout"
	ExporterNone   = "none"
)

// DefaultServiceName names the agent's spans when neither the configuration
// nor OTEL_SERVICE_NAME does.
const DefaultServiceName = "hw-agent"

// Config selects where spans go. Everything else (OTLP endpoint, headers,
// timeout, TLS, sampler) follows the standard OTEL_* environment variables,
// read by the OpenTelemetry SDK itself, so an agent configures like any
// other instrumented service.
type Config struct {
	// Exporter is "otlp", "stdout" or "none"; empty defers to
	// OTEL_TRACES_EXPORTER, and tracing is off when that is unset too.
	Exporter string
	// ServiceName overrides OTEL_SERVICE_NAME; both empty: "hw-agent".
	ServiceName string
	// Stdout receives the stdout exporter's spans; nil is os.Stdout.
	Stdout io.Writer
	// Getenv reads the environment; nil is os.Getenv. Tests inject theirs.
	Getenv func(string) string
}

// Provider is the configured tracer provider and the way to flush it.
type Provider struct {
	// TracerProvider is a no-op provider when tracing is off.
	TracerProvider trace.TracerProvider
	// Enabled reports whether spans are exported anywhere.
	Enabled  bool
	shutdown func(context.Context) error
}

// Shutdown exports the spans still buffered and stops the exporter; the
// agent calls it after draining so the last attempts' spans are not lost.
// It is safe on a disabled provider.
func (p *Provider) Shutdown(ctx context.Context) error {
	if p.shutdown == nil {
		return nil
	}
	if err := p.shutdown(ctx); err != nil {
		return fmt.Errorf("flush traces: %w", err)
	}
	return nil
}

// Setup builds the tracer provider cfg and the OTEL_* environment ask for.
// With nothing configured it returns a disabled provider: tracing costs
// nothing unless someone asked for it.
func Setup(ctx context.Context, cfg Config) (*Provider, error) {
	getenv := cfg.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	name := strings.ToLower(strings.TrimSpace(cfg.Exporter))
	if name == "" {
		// The spec allows a list; the agent exports to one place, the first.
		name, _, _ = strings.Cut(strings.ToLower(getenv("OTEL_TRACES_EXPORTER")), ",")
		name = strings.TrimSpace(name)
	}
	if name == "" || name == ExporterNone || getenv("OTEL_SDK_DISABLED") == "true" {
		return &Provider{TracerProvider: noop.NewTracerProvider()}, nil
	}
	exp, err := newExporter(ctx, name, cfg, getenv)
	if err != nil {
		return nil, err
	}
	res, err := newResource(ctx, cfg.ServiceName, getenv)
	if err != nil {
		return nil, err
	}
	// No WithSampler: the SDK reads OTEL_TRACES_SAMPLER and _ARG itself and
	// defaults to parentbased_always_on, which honours the caller's choice.
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithIDGenerator(NewIDGenerator()),
	)
	return &Provider{TracerProvider: tp, Enabled: true, shutdown: tp.Shutdown}, nil
}

// newExporter builds the exporter name selects. OTLP's protocol comes from
// OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, else OTEL_EXPORTER_OTLP_PROTOCOL,
// else http/protobuf, the specification's default.
func newExporter(ctx context.Context, name string, cfg Config, getenv func(string) string) (sdktrace.SpanExporter, error) {
	switch name {
	case ExporterOTLP:
		protocol := getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
		if protocol == "" {
			protocol = getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
		}
		switch protocol {
		case "", "http/protobuf":
			exp, err := otlptracehttp.New(ctx)
			if err != nil {
				return nil, fmt.Errorf("create OTLP/HTTP trace exporter: %w", err)
			}
			return exp, nil
		case "grpc":
			exp, err := otlptracegrpc.New(ctx)
			if err != nil {
				return nil, fmt.Errorf("create OTLP/gRPC trace exporter: %w", err)
			}
			return exp, nil
		default:
			return nil, fmt.Errorf("OTLP protocol %q is not supported (want http/protobuf or grpc)", protocol)
		}
	case ExporterStdout, "console":
		w := cfg.Stdout
		if w == nil {
			w = os.Stdout
		}
		exp, err := stdouttrace.New(stdouttrace.WithWriter(w))
		if err != nil {
			return nil, fmt.Errorf("create stdout trace exporter: %w", err)
		}
		return exp, nil
	default:
		return nil, fmt.Errorf("trace exporter %q is not supported (want otlp, stdout or none)", name)
	}
}

// newResource names the service: the configured name, else
// OTEL_SERVICE_NAME, else hw-agent; OTEL_RESOURCE_ATTRIBUTES adds to it.
func newResource(ctx context.Context, serviceName string, getenv func(string) string) (*resource.Resource, error) {
	if serviceName == "" {
		serviceName = getenv("OTEL_SERVICE_NAME")
	}
	if serviceName == "" {
		serviceName = DefaultServiceName
	}
	res, err := resource.New(ctx,
		resource.WithFromEnv(),
		resource.WithTelemetrySDK(),
		resource.WithAttributes(semconv.ServiceName(serviceName)),
	)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("build trace resource: %w", err)
	}
	return res, nil
}
