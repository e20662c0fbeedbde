package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/hammerwork-go/hw-agent/dispatch"
	"github.com/hammerwork-go/hw-agent/events/webhook"
	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/maintenance"
	"github.com/hammerwork-go/hw-agent/schedule"
	"github.com/hammerwork-go/hw-agent/store"
	"github.com/hammerwork-go/hw-agent/workflow"
)

// Config is the whole configuration of an agent. Every key is optional; the
// zero-config agent uses the embedded SQLite file hammerwork.db, serves every
// queue and dispatches to http://127.0.0.1:8080/jobs/{queue}.
type Config struct {
	Database DatabaseConfig `toml:"database"`
	Agent    AgentConfig    `toml:"agent"`
	App      AppConfig      `toml:"app"`
	API      APIConfig      `toml:"api"`
	// Retry is the default retry policy of jobs that carry none of their own.
	Retry  job.RetryPolicy `toml:"retry"`
	Queues []QueueConfig   `toml:"queue"`
	Log    LogConfig       `toml:"log"`
	// Tracing selects where OpenTelemetry spans go; off by default.
	Tracing TracingConfig `toml:"tracing"`
	// Retention says how long finished jobs and results are kept.
	Retention RetentionConfig `toml:"retention"`
	// Schedules tunes the scheduler and how [[schedule]] entries are applied.
	Schedules SchedulesConfig `toml:"schedules"`
	// Schedule lists the cron schedules this file defines, upserted by name
	// at start-up.
	Schedule []ScheduleConfig `toml:"schedule"`
	// Events tunes the relay that delivers the outbox to subscribers and
	// how long delivered events are kept.
	Events EventsConfig `toml:"events"`
	// Webhooks lists the webhook subscriptions this file defines, upserted
	// by name at start-up; one removed from the file is deleted.
	Webhooks []webhook.Def `toml:"webhook"`
}

// EventsConfig tunes the event relay every agent runs: every Interval it
// claims the subscribers with events to deliver (one agent per subscriber
// at a time), hands up to Batch events to each one's sink, and deletes
// events every subscriber has passed once they are older than Retention.
type EventsConfig struct {
	// Retention keeps delivered events (those every subscriber has passed)
	// and the webhook delivery log this long. Defaults to 24h.
	Retention job.Duration `toml:"retention"`
	// Interval between relay passes: how late an event is delivered at
	// most while its subscriber keeps up. Defaults to 250ms.
	Interval job.Duration `toml:"interval"`
	// Batch bounds the events read per subscriber per pass. Defaults to 500.
	Batch int `toml:"batch"`
	// ClaimTTL is how long a relay's claim on a subscriber holds without
	// being renewed: another agent takes over a subscriber this long after
	// its relay died. Defaults to 30s.
	ClaimTTL job.Duration `toml:"claim_ttl"`
}

// relayConfig is the [events] section as the relay takes it.
func (e EventsConfig) relayConfig() maintenance.RelayConfig {
	return maintenance.RelayConfig{Interval: e.Interval.D(), Batch: e.Batch, ClaimTTL: e.ClaimTTL.D(), Retention: e.Retention.D()}
}

// secretEnvPrefix marks a [[webhook]] secret read from the environment:
// secrets = ["env:HW_WEBHOOK_ORDERS_SECRET"] takes that variable's value,
// so the file can be shared without its secrets.
const secretEnvPrefix = "env:"

// resolveWebhookSecrets replaces every "env:NAME" secret with NAME's value
// in environ and returns the names it read, which are then no
// configuration keys. An unset or empty variable is an error naming the
// key; the value is never part of a message.
func (c *Config) resolveWebhookSecrets(environ []string) ([]string, error) {
	values := map[string]string{}
	for _, kv := range environ {
		if name, val, ok := strings.Cut(kv, "="); ok {
			values[name] = val
		}
	}
	var names []string
	for i := range c.Webhooks {
		secrets := slices.Clone(c.Webhooks[i].Secrets)
		for j, s := range secrets {
			name, ok := strings.CutPrefix(s, secretEnvPrefix)
			if !ok {
				continue
			}
			if values[name] == "" {
				return nil, fmt.Errorf("webhook[%d].secrets[%d]: environment variable %s is not set", i, j, name)
			}
			secrets[j] = values[name]
			names = append(names, name)
		}
		c.Webhooks[i].Secrets = secrets
	}
	return names, nil
}

// RetentionConfig drives the cleaner: every Interval it clears expired
// results, then deletes finished jobs older than their status's retention,
// BatchSize rows per statement. A retention of 0 keeps that status forever.
// Jobs of a running or paused workflow are never deleted.
type RetentionConfig struct {
	// Interval between cleaner passes, ±10%; 0 turns the cleaner off. Defaults to 1m.
	Interval job.Duration `toml:"interval"`
	// Completed jobs are kept this long after completed_at. Defaults to 168h (7 days).
	Completed job.Duration `toml:"completed"`
	// Failed jobs (dead letters) are kept this long after failed_at. Defaults to 720h (30 days).
	Failed job.Duration `toml:"failed"`
	// Cancelled jobs are kept this long after their scheduled_at. Defaults to 720h (30 days).
	Cancelled job.Duration `toml:"cancelled"`
	// Skipped jobs are kept this long after their scheduled_at. Defaults to 168h (7 days).
	Skipped job.Duration `toml:"skipped"`
	// BatchSize is the number of rows one statement changes. Defaults to 500.
	BatchSize int `toml:"batch_size"`
}

// For returns the retention of a finished status; 0 keeps it forever.
func (r RetentionConfig) For(s job.Status) time.Duration {
	switch s {
	case job.StatusCompleted:
		return r.Completed.D()
	case job.StatusFailed:
		return r.Failed.D()
	case job.StatusCancelled:
		return r.Cancelled.D()
	case job.StatusSkipped:
		return r.Skipped.D()
	}
	return 0
}

// DatabaseConfig says where jobs live.
type DatabaseConfig struct {
	// URL is postgres://..., postgresql://..., mysql://... (or a
	// go-sql-driver DSN, user:pass@tcp(host:port)/db), sqlite://path or
	// sqlite::memory:. Defaults to sqlite://hammerwork.db.
	URL string `toml:"url"`
	// MaxConns caps the connection pool. Defaults to 10.
	MaxConns int `toml:"max_conns"`
}

// AgentConfig tunes the run loop.
type AgentConfig struct {
	// ID names this agent in leased_by. Defaults to hostname-pid.
	ID string `toml:"id"`
	// Queues this agent serves; "*" serves all. Defaults to ["*"].
	Queues []string `toml:"queues"`
	// Concurrency caps in-flight requests to the app, all queues together. Defaults to 50.
	Concurrency int `toml:"concurrency"`
	// LeaseDuration is extended while a request is in flight; it must exceed
	// every request timeout. Defaults to 90s, so that it exceeds the 60s
	// app.request_timeout default.
	LeaseDuration job.Duration `toml:"lease_duration"`
	// PollInterval is the pause between lease attempts when queues are empty,
	// with ±20% jitter. Defaults to 1s.
	PollInterval job.Duration `toml:"poll_interval"`
	// DrainTimeout bounds the wait for in-flight requests on shutdown. Defaults to 25s.
	DrainTimeout job.Duration `toml:"drain_timeout"`
	// RescueInterval is how often expired leases and timed-out workflows
	// are looked for, ±10% so agents drift apart. Defaults to 5s.
	RescueInterval job.Duration `toml:"rescue_interval"`
	// CompleteFlushInterval is no longer used: the completer writes an
	// outcome at once when no write is in flight and batches only the
	// outcomes that arrive during one (group commit), so there is no wait
	// to bound. The key is still accepted, and ignored, so that existing
	// configuration files load.
	CompleteFlushInterval job.Duration `toml:"complete_flush_interval"`
	// MaxLeaseExtension caps the extend of an API heartbeat, so no app can
	// make its job immune to rescue. Defaults to 1h; at least LeaseDuration.
	MaxLeaseExtension job.Duration `toml:"max_lease_extension"`
	// PriorityWeights is the default weighted selection of every producer
	// whose [[queue]] sets none; empty (the default) leases in strict
	// priority order.
	PriorityWeights PriorityWeights `toml:"priority_weights"`
}

// AppConfig describes the local app the agent dispatches to.
type AppConfig struct {
	// HandlerURL may contain {queue}. Defaults to http://127.0.0.1:8080/jobs/{queue}.
	HandlerURL string `toml:"handler_url"`
	// HealthURL gates leasing while it fails; empty disables the gate.
	HealthURL string `toml:"health_url"`
	// HealthInterval is how often HealthURL is checked. Defaults to 2s.
	HealthInterval job.Duration `toml:"health_interval"`
	// RequestTimeout bounds one request unless the job or queue sets one. Defaults to 60s.
	RequestTimeout job.Duration `toml:"request_timeout"`
	// SigningSecret enables Standard Webhooks signatures; empty leaves requests unsigned.
	SigningSecret string `toml:"signing_secret"`
	// Envelope wraps the payload in {id, queue, attempt, payload, parents}.
	Envelope bool `toml:"envelope"`
	// MaxResultBytes caps a stored result. Defaults to 1 MiB.
	MaxResultBytes int64 `toml:"max_result_bytes"`
}

// APIConfig configures the agent's HTTP API.
type APIConfig struct {
	// Listen is the API address. Defaults to 127.0.0.1:9090; "off" disables the API.
	Listen string `toml:"listen"`
	// Token, when set, is required as a bearer token on every /v1 route.
	Token string `toml:"token"`
	// MaxBodyBytes caps a request body. Defaults to 10 MiB.
	MaxBodyBytes int64 `toml:"max_body_bytes"`
}

// QueueConfig overrides settings for one queue.
type QueueConfig struct {
	Name string `toml:"name"`
	// Concurrency caps this queue's in-flight requests on this agent; 0: only the global cap.
	Concurrency    int              `toml:"concurrency"`
	HandlerURL     string           `toml:"handler_url"`
	RequestTimeout job.Duration     `toml:"request_timeout"`
	Envelope       *bool            `toml:"envelope"`
	Retry          *job.RetryPolicy `toml:"retry"`
	// PriorityWeights overrides agent.priority_weights for this queue.
	PriorityWeights PriorityWeights `toml:"priority_weights"`
	// RateLimit caps this queue's dispatches on this agent ("100/s",
	// "500/m"); empty: no limit.
	RateLimit RateLimit `toml:"rate_limit"`
	// Burst is how many dispatches may go at once within RateLimit; 0 means 1.
	Burst int `toml:"burst"`
}

// SchedulesConfig tunes the scheduler every agent runs and how the
// [[schedule]] entries are applied at start-up.
type SchedulesConfig struct {
	// Interval is the longest wait between two scheduler passes of an
	// agent (each wait is 85 to 95% of it, so agents drift apart): how late
	// a slot fires at most while an agent is up. Defaults to 1s, so an
	// "@every 1s" schedule fires every second.
	Interval job.Duration `toml:"interval"`
	// Prune deletes, at start-up, every stored schedule that no
	// [[schedule]] entry names (with its runs; the jobs they created stay),
	// so the file is the whole list. Defaults to false: schedules created
	// through the API or the CLI are kept.
	Prune bool `toml:"prune"`
}

// ScheduleConfig is one [[schedule]] entry: a store.ScheduleDef whose
// target is a job (queue and the job keys) or a workflow (workflow_file).
// Zero policy keys take the store's defaults (overlap "skip", catch-up
// "latest" within 1h, no jitter).
type ScheduleConfig struct {
	Name string `toml:"name"`
	// Cron is 5 or 6 fields, a descriptor ("@daily") or "@every 10m".
	Cron string `toml:"cron"`
	// Timezone is an IANA name the cron fields are read in; empty is UTC.
	Timezone      string           `toml:"timezone"`
	Overlap       schedule.Overlap `toml:"overlap"`
	Catchup       schedule.Catchup `toml:"catchup"`
	CatchupWindow job.Duration     `toml:"catchup_window"`
	Jitter        job.Duration     `toml:"jitter"`
	// StartAt and EndAt bound the slots that fire, both inclusive.
	StartAt           ScheduleTime `toml:"start_at"`
	EndAt             ScheduleTime `toml:"end_at"`
	DependsOnSchedule string       `toml:"depends_on_schedule"`
	// Paused, when set, pauses (true) or resumes (false) the schedule at
	// every start-up; unset leaves a pause made through the API or the CLI
	// as it is.
	Paused *bool `toml:"paused"`

	// Queue makes the target a job on that queue, with the keys below.
	Queue       string           `toml:"queue"`
	Payload     SchedulePayload  `toml:"payload"`
	Priority    *job.Priority    `toml:"priority"`
	MaxAttempts int              `toml:"max_attempts"`
	Timeout     job.Duration     `toml:"timeout"`
	Retry       *job.RetryPolicy `toml:"retry"`
	UniqueKey   string           `toml:"unique_key"`
	ResultTTL   job.Duration     `toml:"result_ttl"`

	// WorkflowFile makes the target a workflow: the path of a definition
	// as `hw-agent workflow create --file` reads it (.yaml/.yml as YAML,
	// else JSON), relative to the configuration file's directory.
	WorkflowFile string `toml:"workflow_file"`
}

// SchedulePayload is a [[schedule]] job's payload as JSON. A string is
// JSON text, taken as it is (payload = '{"report": "daily"}'); any other
// TOML value, a table above all (payload = { report = "daily" }), is
// converted to the same JSON.
type SchedulePayload json.RawMessage

// UnmarshalTOML converts the decoded TOML value to JSON.
func (p *SchedulePayload) UnmarshalTOML(v any) error {
	if text, ok := v.(string); ok {
		if !json.Valid([]byte(text)) {
			return fmt.Errorf("payload string %q is not JSON text; write a JSON document or a TOML table", text)
		}
		*p = SchedulePayload(text)
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("payload cannot be converted to JSON: %w", err)
	}
	*p = b
	return nil
}

// ScheduleTime is start_at or end_at: a TOML date-time with an offset
// (2026-01-01T00:00:00Z) or the same as an RFC 3339 string; empty is unset.
// A date-time without an offset is refused: it would mean this machine's
// zone, and agents on other machines would disagree.
type ScheduleTime string

// UnmarshalTOML keeps the time as RFC 3339 text.
func (t *ScheduleTime) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case time.Time:
		if strings.HasSuffix(v.Location().String(), "-local") {
			return fmt.Errorf("%s has no offset; write it as 2026-01-01T00:00:00Z or with +hh:mm", v.Format("2006-01-02T15:04:05"))
		}
		*t = ScheduleTime(v.Format(time.RFC3339Nano))
	case string:
		*t = ScheduleTime(v)
	default:
		return fmt.Errorf("%v is not a date-time", v)
	}
	return nil
}

// parse is the time, nil when unset.
func (t ScheduleTime) parse() (*time.Time, error) {
	if t == "" {
		return nil, nil
	}
	v, err := time.Parse(time.RFC3339Nano, string(t))
	if err != nil {
		return nil, fmt.Errorf("%q is not an RFC 3339 date-time such as 2026-01-01T00:00:00Z", string(t))
	}
	return &v, nil
}

// def is the entry as the store keeps it. A workflow target's file is read
// and parsed here, so the definition stored is the file's as of start-up.
func (s ScheduleConfig) def() (store.ScheduleDef, error) {
	d := store.ScheduleDef{Name: s.Name, Cron: s.Cron, Timezone: s.Timezone, Overlap: s.Overlap, Catchup: s.Catchup,
		CatchupWindow: s.CatchupWindow, Jitter: s.Jitter, DependsOnSchedule: s.DependsOnSchedule}
	var err error
	if d.StartAt, err = s.StartAt.parse(); err != nil {
		return d, fmt.Errorf("start_at: %w", err)
	}
	if d.EndAt, err = s.EndAt.parse(); err != nil {
		return d, fmt.Errorf("end_at: %w", err)
	}
	switch {
	case s.WorkflowFile != "":
		b, err := os.ReadFile(s.WorkflowFile)
		if err != nil {
			return d, fmt.Errorf("workflow_file: %w", err)
		}
		w, err := workflow.ParseFile(s.WorkflowFile, b)
		if err != nil {
			return d, fmt.Errorf("workflow_file %s: %w", s.WorkflowFile, err)
		}
		d.Target.Workflow = &w
	case s.Queue != "":
		d.Target.Job = &store.JobTemplate{Queue: s.Queue, Payload: json.RawMessage(s.Payload), Priority: s.Priority,
			MaxAttempts: s.MaxAttempts, Timeout: s.Timeout, Retry: s.Retry, UniqueKey: s.UniqueKey, ResultTTL: s.ResultTTL}
	}
	return d, nil
}

// jobKeysSet names the [[schedule]] keys only a job target takes that the
// entry sets, in the file's documented order.
func (s ScheduleConfig) jobKeysSet() []string {
	var keys []string
	for _, k := range []struct {
		name string
		set  bool
	}{{"payload", len(s.Payload) > 0}, {"priority", s.Priority != nil}, {"max_attempts", s.MaxAttempts != 0},
		{"timeout", s.Timeout != 0}, {"retry", s.Retry != nil}, {"unique_key", s.UniqueKey != ""}, {"result_ttl", s.ResultTTL != 0}} {
		if k.set {
			keys = append(keys, k.name)
		}
	}
	return keys
}

// resolveWorkflowFiles makes relative workflow_file paths relative to dir,
// the configuration file's directory, so the agent finds them whatever
// directory it was started from.
func (c *Config) resolveWorkflowFiles(dir string) {
	for i := range c.Schedule {
		if f := c.Schedule[i].WorkflowFile; f != "" && !filepath.IsAbs(f) {
			c.Schedule[i].WorkflowFile = filepath.Join(dir, f)
		}
	}
}

// LogConfig configures log/slog output.
type LogConfig struct {
	// Format is "text" (default) or "json".
	Format string `toml:"format"`
	// Level is debug, info (default), warn or error.
	Level string `toml:"level"`
}

// TracingConfig selects the span exporter. The OTLP endpoint, headers,
// protocol (OTEL_EXPORTER_OTLP_PROTOCOL: http/protobuf or grpc) and sampler
// (OTEL_TRACES_SAMPLER) come from the standard OTEL_* environment
// variables, so the agent is configured like any instrumented service.
type TracingConfig struct {
	// Exporter is "otlp", "stdout" or "none". Empty (the default) defers to
	// OTEL_TRACES_EXPORTER; with that unset too, tracing is off.
	Exporter string `toml:"exporter"`
	// ServiceName is service.name on every span. Empty (the default) uses
	// OTEL_SERVICE_NAME, else "hw-agent".
	ServiceName string `toml:"service_name"`
}

// DefaultConfig returns the zero-config configuration.
func DefaultConfig() Config {
	return Config{
		Database: DatabaseConfig{URL: "sqlite://hammerwork.db", MaxConns: 10},
		Agent: AgentConfig{
			Queues:            []string{"*"},
			Concurrency:       50,
			LeaseDuration:     job.Duration(90 * time.Second),
			PollInterval:      job.Duration(time.Second),
			DrainTimeout:      job.Duration(25 * time.Second),
			RescueInterval:    job.Duration(5 * time.Second),
			MaxLeaseExtension: job.Duration(time.Hour),
		},
		App: AppConfig{
			HandlerURL:     "http://127.0.0.1:8080/jobs/{queue}",
			HealthInterval: job.Duration(2 * time.Second),
			RequestTimeout: job.Duration(60 * time.Second),
			MaxResultBytes: 1 << 20,
		},
		API: APIConfig{Listen: "127.0.0.1:9090", MaxBodyBytes: 10 << 20},
		Retention: RetentionConfig{
			Interval:  job.Duration(time.Minute),
			Completed: job.Duration(7 * 24 * time.Hour),
			Failed:    job.Duration(30 * 24 * time.Hour),
			Cancelled: job.Duration(30 * 24 * time.Hour),
			Skipped:   job.Duration(7 * 24 * time.Hour),
			BatchSize: 500,
		},
		Log:       LogConfig{Format: "text", Level: "info"},
		Schedules: SchedulesConfig{Interval: job.Duration(maintenance.DefaultScheduleInterval)},
		Events: EventsConfig{
			Retention: job.Duration(maintenance.DefaultEventRetention),
			Interval:  job.Duration(maintenance.DefaultRelayInterval),
			Batch:     maintenance.DefaultRelayBatch,
			ClaimTTL:  job.Duration(maintenance.DefaultRelayClaimTTL),
		},
	}
}

// LoadConfig reads the TOML file at path (none when empty), applies
// HW_<SECTION>_<KEY> environment overrides from environ, and validates the
// result. Unknown keys are errors that name the key.
func LoadConfig(path string, environ []string) (Config, error) {
	cfg := DefaultConfig()
	if path != "" {
		md, err := toml.DecodeFile(path, &cfg)
		if err != nil {
			return Config{}, fmt.Errorf("read config %s: %w", path, err)
		}
		if und := md.Undecoded(); len(und) > 0 {
			keys := make([]string, len(und))
			for i, k := range und {
				keys[i] = k.String()
			}
			return Config{}, fmt.Errorf("config %s: unknown key %s", path, strings.Join(keys, ", "))
		}
		cfg.resolveWorkflowFiles(filepath.Dir(path))
	}
	secretVars, err := cfg.resolveWebhookSecrets(environ)
	if err != nil {
		return Config{}, err
	}
	environ = slices.DeleteFunc(slices.Clone(environ), func(kv string) bool {
		name, _, _ := strings.Cut(kv, "=")
		return slices.Contains(secretVars, name)
	})
	if err := applyEnv(&cfg, environ); err != nil {
		return Config{}, err
	}
	if cfg.Agent.ID == "" {
		cfg.Agent.ID = defaultAgentID()
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// applyEnv sets each section key named by an HW_<SECTION>_<KEY> variable.
// Lists are comma-separated. Unknown HW_ variables are errors, like unknown
// keys in the file.
func applyEnv(cfg *Config, environ []string) error {
	fields := map[string]reflect.Value{}
	root := reflect.ValueOf(cfg).Elem()
	for i := 0; i < root.NumField(); i++ {
		sec := root.Type().Field(i)
		if sec.Type.Kind() != reflect.Struct {
			continue
		}
		secName := sec.Tag.Get("toml")
		for j := 0; j < sec.Type.NumField(); j++ {
			key := sec.Type.Field(j).Tag.Get("toml")
			fields["HW_"+strings.ToUpper(secName+"_"+key)] = root.Field(i).Field(j)
		}
	}
	for _, kv := range environ {
		name, val, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, "HW_") || strings.HasPrefix(name, "HW_TEST_") {
			continue
		}
		f, known := fields[name]
		if !known {
			return fmt.Errorf("environment variable %s names no configuration key", name)
		}
		if err := setFromString(f, val); err != nil {
			return fmt.Errorf("environment variable %s: %w", name, err)
		}
	}
	return nil
}

func setFromString(f reflect.Value, val string) error {
	if u, ok := f.Addr().Interface().(interface{ UnmarshalText([]byte) error }); ok {
		return u.UnmarshalText([]byte(val))
	}
	switch f.Kind() {
	case reflect.String:
		f.SetString(val)
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(val, 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not an integer", val)
		}
		f.SetInt(n)
	case reflect.Float64:
		n, err := strconv.ParseFloat(val, 64)
		if err != nil {
			return fmt.Errorf("%q is not a number", val)
		}
		f.SetFloat(n)
	case reflect.Bool:
		b, err := strconv.ParseBool(val)
		if err != nil {
			return fmt.Errorf("%q is not true or false", val)
		}
		f.SetBool(b)
	case reflect.Slice:
		var items []string
		for _, s := range strings.Split(val, ",") {
			if s = strings.TrimSpace(s); s != "" {
				items = append(items, s)
			}
		}
		f.Set(reflect.ValueOf(items))
	case reflect.Pointer:
		v := reflect.New(f.Type().Elem())
		if err := setFromString(v.Elem(), val); err != nil {
			return err
		}
		f.Set(v)
	default:
		return fmt.Errorf("cannot be set from the environment")
	}
	return nil
}

// Validate checks every key and reports every bad one, each message naming
// its key and value, so one run shows everything to fix.
func (c *Config) Validate() error {
	v := &problems{}
	c.validateDatabase(v)
	c.validateAgent(v)
	c.validateApp(v)
	c.validateAPI(v)
	c.validateRetention(v)
	if err := c.Retry.Validate(); err != nil {
		v.add("%v", err)
	}
	c.validateLog(v)
	c.validateTracing(v)
	c.validateQueues(v)
	c.validateSchedules(v)
	c.validateEvents(v)
	c.validateWebhooks(v)
	return v.err()
}

// problems gathers the configuration's problems, so Validate reports them
// all at once.
type problems struct{ errs []error }

func (p *problems) add(format string, a ...any) { p.errs = append(p.errs, fmt.Errorf(format, a...)) }

func (p *problems) err() error { return errors.Join(p.errs...) }

func (c *Config) validateDatabase(v *problems) {
	if _, err := store.ParseDatabaseURL(c.Database.URL); err != nil {
		v.add("database.url: %v", err)
	}
	if c.Database.MaxConns < 1 {
		v.add("database.max_conns (%d) must be at least 1", c.Database.MaxConns)
	}
}

func (c *Config) validateAgent(v *problems) {
	if len(c.Agent.Queues) == 0 {
		v.add("agent.queues must name at least one queue or \"*\"")
	}
	for _, q := range c.Agent.Queues {
		if q != "*" && !store.ValidQueueName(q) {
			v.add("agent.queues: %q is not a valid queue name", q)
		}
	}
	if c.Agent.Concurrency < 1 {
		v.add("agent.concurrency (%d) must be at least 1", c.Agent.Concurrency)
	}
	if c.Agent.PollInterval.D() <= 0 {
		v.add("agent.poll_interval must be positive")
	}
	if c.Agent.RescueInterval.D() <= 0 {
		v.add("agent.rescue_interval must be positive")
	}
	if c.Agent.MaxLeaseExtension.D() < c.Agent.LeaseDuration.D() {
		v.add("agent.max_lease_extension (%s) must be at least agent.lease_duration (%s), the extension of a heartbeat that names none",
			c.Agent.MaxLeaseExtension, c.Agent.LeaseDuration)
	}
	if err := c.Agent.PriorityWeights.validate(); err != nil {
		v.add("agent.%v", err)
	}
}

func (c *Config) validateApp(v *problems) {
	if err := checkURL(c.App.HandlerURL); err != nil {
		v.add("app.handler_url: %v", err)
	}
	if c.App.HealthURL != "" {
		if err := checkURL(c.App.HealthURL); err != nil {
			v.add("app.health_url: %v", err)
		}
	}
	if c.App.HealthInterval.D() <= 0 {
		v.add("app.health_interval must be positive")
	}
	if c.App.RequestTimeout.D() <= 0 {
		v.add("app.request_timeout must be positive")
	}
	if c.Agent.LeaseDuration.D() <= c.App.RequestTimeout.D() {
		v.add("agent.lease_duration (%s) must exceed app.request_timeout (%s)", c.Agent.LeaseDuration, c.App.RequestTimeout)
	}
	if c.App.SigningSecret != "" {
		// Checked here so a bad secret stops start-up instead of failing
		// every dispatch.
		if _, err := dispatch.SigningKey(c.App.SigningSecret); err != nil {
			v.add("app.signing_secret: %v", err)
		}
	}
	if c.App.MaxResultBytes < 0 {
		v.add("app.max_result_bytes (%d) must not be negative", c.App.MaxResultBytes)
	}
}

func (c *Config) validateAPI(v *problems) {
	if c.API.MaxBodyBytes < 1 {
		v.add("api.max_body_bytes (%d) must be positive", c.API.MaxBodyBytes)
	}
}

func (c *Config) validateRetention(v *problems) {
	for _, r := range []struct {
		key string
		d   job.Duration
	}{{"interval", c.Retention.Interval}, {"completed", c.Retention.Completed}, {"failed", c.Retention.Failed},
		{"cancelled", c.Retention.Cancelled}, {"skipped", c.Retention.Skipped}} {
		if r.d < 0 {
			v.add("retention.%s (%s) must not be negative (0: off or kept forever)", r.key, r.d)
		}
	}
	if c.Retention.BatchSize < 1 || c.Retention.BatchSize > 10000 {
		v.add("retention.batch_size (%d) must be between 1 and 10000", c.Retention.BatchSize)
	}
}

func (c *Config) validateLog(v *problems) {
	switch c.Log.Format {
	case "text", "json":
	default:
		v.add("log.format %q must be text or json", c.Log.Format)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		v.add("log.level %q must be debug, info, warn or error", c.Log.Level)
	}
}

func (c *Config) validateTracing(v *problems) {
	switch c.Tracing.Exporter {
	case "", "otlp", "stdout", "none":
	default:
		v.add("tracing.exporter %q must be otlp, stdout or none (empty: OTEL_TRACES_EXPORTER decides)", c.Tracing.Exporter)
	}
}

// validateQueues checks each [[queue]] and that no name is configured twice.
func (c *Config) validateQueues(v *problems) {
	seen := map[string]bool{}
	for i, q := range c.Queues {
		if !store.ValidQueueName(q.Name) {
			v.add("queue[%d].name %q is not a valid queue name", i, q.Name)
			continue
		}
		key := fmt.Sprintf("queue %q", q.Name)
		if seen[q.Name] {
			v.add("%s is configured twice", key)
		}
		seen[q.Name] = true
		c.validateQueue(v, key, q)
	}
}

// validateQueue checks one [[queue]]; key names it in messages.
func (c *Config) validateQueue(v *problems, key string, q QueueConfig) {
	if q.Concurrency < 0 {
		v.add("%s: concurrency (%d) must not be negative", key, q.Concurrency)
	}
	if q.HandlerURL != "" {
		if err := checkURL(q.HandlerURL); err != nil {
			v.add("%s: handler_url: %v", key, err)
		}
	}
	if q.RequestTimeout.D() >= c.Agent.LeaseDuration.D() {
		v.add("agent.lease_duration (%s) must exceed %s request_timeout (%s)", c.Agent.LeaseDuration, key, q.RequestTimeout)
	}
	if q.Retry != nil {
		if err := q.Retry.Validate(); err != nil {
			v.add("%s: %v", key, err)
		}
	}
	if err := q.PriorityWeights.validate(); err != nil {
		v.add("%s: %v", key, err)
	}
	if q.Burst < 0 {
		v.add("%s: burst (%d) must not be negative", key, q.Burst)
	}
	if q.Burst > 0 && q.RateLimit == "" {
		v.add("%s: burst needs a rate_limit", key)
	}
	if _, _, err := q.RateLimit.Parse(); err != nil {
		v.add("%s: rate_limit: %v", key, err)
	}
}

func (c *Config) validateSchedules(v *problems) {
	if c.Schedules.Interval.D() <= 0 {
		v.add("schedules.interval must be positive")
	}
	first := map[string]int{}
	for i, s := range c.Schedule {
		key := fmt.Sprintf("schedule[%d]", i)
		if j, dup := first[s.Name]; dup && s.Name != "" {
			v.add("%s.name %q is schedule[%d]'s name too", key, s.Name, j)
		} else {
			first[s.Name] = i
		}
		c.validateSchedule(v, key, s)
	}
}

// validateSchedule checks one [[schedule]] with store.ScheduleDef.Validate,
// naming each problem by its key in the file; key is "schedule[i]".
func (c *Config) validateSchedule(v *problems, key string, s ScheduleConfig) {
	switch {
	case s.Queue == "" && s.WorkflowFile == "":
		v.add("%s: needs a target: queue (a job) or workflow_file (a workflow)", key)
	case s.Queue != "" && s.WorkflowFile != "":
		v.add("%s: queue and workflow_file are both set; give one target", key)
	case s.WorkflowFile != "":
		for _, k := range s.jobKeysSet() {
			v.add("%s.%s: only a job target (queue) takes it; a workflow's steps carry their own", key, k)
		}
	}
	def, err := s.def()
	if err != nil {
		v.add("%s.%v", key, err)
		return
	}
	var verr *schedule.ValidationError
	if !errors.As(def.Validate(), &verr) {
		return
	}
	for _, p := range verr.Problems {
		switch p.Field {
		case "target": // reported above, in the file's terms
		case "target.job": // the message names the key
			v.add("%s: %s", key, p.Message)
		case "target.workflow":
			v.add("%s.workflow_file %s: %s", key, s.WorkflowFile, p.Message)
		default:
			v.add("%s.%s: %s", key, strings.TrimPrefix(p.Field, "target.job."), p.Message)
		}
	}
}

func (c *Config) validateEvents(v *problems) {
	for _, d := range []struct {
		key string
		d   job.Duration
	}{{"retention", c.Events.Retention}, {"interval", c.Events.Interval}, {"claim_ttl", c.Events.ClaimTTL}} {
		if d.d <= 0 {
			v.add("events.%s (%s) must be positive", d.key, d.d)
		}
	}
	if c.Events.Batch < 1 || c.Events.Batch > 10000 {
		v.add("events.batch (%d) must be between 1 and 10000", c.Events.Batch)
	}
	if c.Events.Interval > 0 && c.Events.ClaimTTL > 0 && c.Events.ClaimTTL <= c.Events.Interval {
		v.add("events.claim_ttl (%s) must exceed events.interval (%s), or a relay's claims lapse between its passes",
			c.Events.ClaimTTL, c.Events.Interval)
	}
}

// webhookResolveTimeout bounds the host lookups of the [[webhook]] checks
// (a URL that reaches this agent's own API is refused).
const webhookResolveTimeout = 10 * time.Second

// validateWebhooks checks each [[webhook]] with webhook.Def.Validate, whose
// errors name the key ("webhook[1].url: ..."), and that no name is used
// twice.
func (c *Config) validateWebhooks(v *problems) {
	if len(c.Webhooks) == 0 {
		return
	}
	var self []string
	if c.API.Listen != "off" {
		self = []string{c.API.Listen}
	}
	ctx, cancel := context.WithTimeout(context.Background(), webhookResolveTimeout)
	defer cancel()
	first := map[string]int{}
	for i, d := range c.Webhooks {
		key := fmt.Sprintf("webhook[%d].", i)
		if j, dup := first[d.Name]; dup && d.Name != "" {
			v.add("%sname %q is webhook[%d]'s name too", key, d.Name, j)
		} else {
			first[d.Name] = i
		}
		if err := d.Validate(ctx, webhook.ValidateParams{Prefix: key, Self: self}); err != nil {
			v.add("%v", err)
		}
	}
}

func checkURL(raw string) error {
	u, err := url.Parse(strings.ReplaceAll(raw, "{queue}", "q"))
	if err != nil {
		return fmt.Errorf("%q is not a URL: %v", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%q must be an http:// or https:// URL", raw)
	}
	if u.Host == "" {
		return fmt.Errorf("%q has no host", raw)
	}
	return nil
}

// Queue returns the overrides configured for name, if any.
func (c *Config) Queue(name string) (QueueConfig, bool) {
	for _, q := range c.Queues {
		if q.Name == name {
			return q, true
		}
	}
	return QueueConfig{}, false
}

// defaultAgentID is hostname-pid, unique per process on a host.
func defaultAgentID() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = "agent"
	}
	return fmt.Sprintf("%s-%d", h, os.Getpid())
}
