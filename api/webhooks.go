package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/hammerwork-go/hw-agent/events"
	"github.com/hammerwork-go/hw-agent/events/webhook"
	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
)

// Webhook subscriptions are store subscribers of kind webhook whose config
// is the webhook.Def as given. The views, the definition's parsing and the
// ping and redelivery are exported so `hw-agent webhook` does exactly what
// these routes do, against the database.

// WebhookView is one webhook as GET /v1/webhooks/{id} and `hw-agent webhook
// show --output json` show it: the definition with its defaults filled in,
// the secrets masked, and the relay's state. Durations are Go duration
// strings, times RFC 3339 in UTC.
type WebhookView struct {
	ID   uuid.UUID `json:"id"`
	Name string    `json:"name"`
	URL  string    `json:"url"`
	// Secrets shows each secret's prefix and last 4 characters only: a
	// secret is never returned.
	Secrets        []string     `json:"secrets"`
	Events         []string     `json:"events"`
	Queues         []string     `json:"queues"`
	Priorities     []int        `json:"priorities"`
	WorkflowNames  []string     `json:"workflow_names"`
	IncludePayload bool         `json:"include_payload"`
	IncludeResult  bool         `json:"include_result"`
	MaxAttempts    int          `json:"max_attempts"`
	RetryInitial   job.Duration `json:"retry_initial"`
	RetryMax       job.Duration `json:"retry_max"`
	MaxFailures    int          `json:"max_failures"`
	Timeout        job.Duration `json:"timeout"`
	Concurrency    int          `json:"concurrency"`
	Enabled        bool         `json:"enabled"`
	DisabledReason string       `json:"disabled_reason,omitempty"`
	DisabledAt     *time.Time   `json:"disabled_at,omitempty"`
	// Source is "config" for a [[webhook]] entry, which the next start-up
	// puts back as the file has it, or "api".
	Source              string     `json:"source"`
	Cursor              int64      `json:"cursor"`
	ConsecutiveFailures int        `json:"consecutive_failures"`
	RetryAt             *time.Time `json:"retry_at,omitempty"`
	LastError           string     `json:"last_error,omitempty"`
	LastDeliveredAt     *time.Time `json:"last_delivered_at,omitempty"`
	CreatedAt           time.Time  `json:"created_at"`
	UpdatedAt           time.Time  `json:"updated_at"`
}

// NewWebhookView renders a stored webhook subscriber; its config must be a
// webhook.Def.
func NewWebhookView(sub *store.Subscriber) (WebhookView, error) {
	var def webhook.Def
	if err := json.Unmarshal(sub.Config, &def); err != nil {
		return WebhookView{}, fmt.Errorf("decode webhook %q's definition: %w", sub.Name, err)
	}
	def = def.WithDefaults()
	secrets := make([]string, len(def.Secrets))
	for i, s := range def.Secrets {
		secrets[i] = MaskSecret(s)
	}
	return WebhookView{
		ID: sub.ID, Name: sub.Name, URL: def.URL, Secrets: secrets,
		Events: orEmpty(def.Types), Queues: orEmpty(def.Queues), Priorities: orEmpty(def.Priorities),
		WorkflowNames: orEmpty(def.WorkflowNames), IncludePayload: sub.IncludePayload, IncludeResult: sub.IncludeResult,
		MaxAttempts: def.MaxAttempts, RetryInitial: def.RetryInitial, RetryMax: def.RetryMax, MaxFailures: def.MaxFailures,
		Timeout: def.Timeout, Concurrency: def.Concurrency,
		Enabled: sub.Enabled, DisabledReason: sub.DisabledReason, DisabledAt: utcPtr(sub.DisabledAt),
		Source: sub.Source, Cursor: sub.Cursor, ConsecutiveFailures: sub.ConsecutiveFailures,
		RetryAt: utcPtr(sub.RetryAt), LastError: sub.LastError, LastDeliveredAt: utcPtr(sub.LastDeliveredAt),
		CreatedAt: sub.CreatedAt.UTC(), UpdatedAt: sub.UpdatedAt.UTC(),
	}, nil
}

func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// secretPrefix is how every Standard Webhooks secret begins.
const secretPrefix = "whsec_"

// MaskSecret shows enough of a secret to tell two apart during a rotation:
// its prefix and last 4 characters.
func MaskSecret(s string) string {
	const shown = 4
	if len(s) <= len(secretPrefix)+shown {
		return secretPrefix + "…"
	}
	return secretPrefix + "…" + s[len(s)-shown:]
}

// DeliveryView is one attempt of the delivery log.
type DeliveryView struct {
	ID         uuid.UUID `json:"id"`
	Webhook    uuid.UUID `json:"webhook_id"`
	EventID    uuid.UUID `json:"event_id"`
	EventSeq   int64     `json:"event_seq"`
	EventType  string    `json:"event_type"`
	Attempt    int       `json:"attempt"`
	Outcome    string    `json:"outcome"`
	StatusCode int       `json:"status_code"`
	DurationMS int64     `json:"duration_ms"`
	Error      string    `json:"error,omitempty"`
	// Response is the first 4 KiB of the receiver's answer.
	Response    string    `json:"response,omitempty"`
	AgentID     string    `json:"agent_id"`
	AttemptedAt time.Time `json:"attempted_at"`
}

// NewDeliveryView renders a stored delivery.
func NewDeliveryView(d *store.Delivery) DeliveryView {
	return DeliveryView{ID: d.ID, Webhook: d.Subscriber, EventID: d.EventID, EventSeq: d.EventSeq, EventType: d.EventType,
		Attempt: d.Attempt, Outcome: d.Outcome, StatusCode: d.StatusCode, DurationMS: d.Duration.Milliseconds(),
		Error: d.Error, Response: d.Response, AgentID: d.AgentID, AttemptedAt: d.At.UTC()}
}

type webhookList struct {
	Webhooks   []WebhookView `json:"webhooks"`
	NextCursor string        `json:"next_cursor"`
}

type deliveryList struct {
	Deliveries []DeliveryView `json:"deliveries"`
	NextCursor string         `json:"next_cursor"`
}

// fieldProblem is one entry of a 422's details, as for a schedule.
type fieldProblem struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// webhookInvalid is the 422 of a rejected definition: the message names
// the field and the details list it.
func webhookInvalid(field, message string) *apiError {
	return &apiError{Status: http.StatusUnprocessableEntity, Code: codeInvalid, Message: field + ": " + message,
		Details: []fieldProblem{{Field: field, Message: message}}}
}

// webhookError turns a definition's *events.FieldError into its 422; other
// errors pass through to classify.
func webhookError(err error) error {
	var fe *events.FieldError
	if errors.As(err, &fe) {
		return webhookInvalid(fe.Field, fe.Message)
	}
	return err
}

// DecodeWebhookDef reads a definition strictly: an unknown key, a value of
// the wrong type or a duration that does not parse is an *events.FieldError
// naming the key. Malformed JSON is returned as the decoder's error.
func DecodeWebhookDef(body []byte) (webhook.Def, error) {
	var def webhook.Def
	err := strictJSON(body, &def)
	if err == nil {
		return def, nil
	}
	var (
		syntax *json.SyntaxError
		typ    *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &typ) && typ.Field != "":
		// The path names embedded structs too (Policy.Filter.events); a
		// definition's keys are all top level.
		field := typ.Field[strings.LastIndex(typ.Field, ".")+1:]
		return webhook.Def{}, &events.FieldError{Field: field, Message: fmt.Sprintf("must be %s, got %s", jsonKind(typ.Type.Kind().String()), typ.Value)}
	case typ != nil, errors.As(err, &syntax), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, errTrailing):
		// Not an object at all, or not JSON.
		return webhook.Def{}, err
	}
	if name, ok := unknownField(err); ok {
		return webhook.Def{}, &events.FieldError{Field: name, Message: "is not a webhook setting"}
	}
	if key := failingKey(body); key != "" {
		return webhook.Def{}, &events.FieldError{Field: key, Message: err.Error()}
	}
	return webhook.Def{}, fmt.Errorf("%w: %w", store.ErrInvalid, err)
}

func strictJSON(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errTrailing
	}
	return nil
}

// errTrailing is a body holding more than one JSON value.
var errTrailing = errors.New("request body must hold a single JSON object")

func unknownField(err error) (string, bool) {
	var name string
	if _, scanErr := fmt.Sscanf(err.Error(), "json: unknown field %q", &name); scanErr != nil {
		return "", false
	}
	return name, true
}

// failingKey finds which top-level key a value parser (a duration's)
// refused, by decoding each key alone: the decoder's own error does not
// say.
func failingKey(body []byte) string {
	var fields map[string]json.RawMessage
	if json.Unmarshal(body, &fields) != nil {
		return ""
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		one, err := json.Marshal(map[string]json.RawMessage{k: fields[k]})
		if err != nil {
			continue
		}
		var def webhook.Def
		if json.Unmarshal(one, &def) != nil {
			return k
		}
	}
	return ""
}

// WebhookSubscriber is the stored form of a validated definition.
func WebhookSubscriber(def webhook.Def, source string) (store.SubscriberDef, error) {
	config, err := json.Marshal(def)
	if err != nil {
		return store.SubscriberDef{}, fmt.Errorf("encode webhook %q's definition: %w", def.Name, err)
	}
	return store.SubscriberDef{Name: def.Name, Kind: store.SubscriberWebhook, Source: source, Config: config,
		IncludePayload: def.IncludePayload, IncludeResult: def.IncludeResult, Enabled: def.IsEnabled()}, nil
}

// CreateWebhookParams are a new webhook and what it is checked against.
type CreateWebhookParams struct {
	Def webhook.Def
	// Self are the API's own listen addresses, which the URL must not
	// reach.
	Self []string
	// Now is the store's clock override; zero is the database's.
	Now time.Time
}

// CreateWebhook validates the definition and stores it as a new webhook;
// a name already taken is an *events.FieldError on name, and nothing is
// written.
func CreateWebhook(ctx context.Context, st store.Events, p CreateWebhookParams) (*store.Subscriber, error) {
	def := p.Def
	if err := def.Validate(ctx, webhook.ValidateParams{Self: p.Self}); err != nil {
		return nil, err
	}
	sd, err := WebhookSubscriber(def, store.SourceAPI)
	if err != nil {
		return nil, err
	}
	sub, _, err := st.PutSubscriber(ctx, store.PutSubscriberParams{Def: sd, CreateOnly: true, Now: p.Now})
	if errors.Is(err, store.ErrConflict) {
		return nil, &events.FieldError{Field: "name", Message: fmt.Sprintf("a subscriber named %q exists; choose another name or replace it with PUT", def.Name)}
	}
	if err != nil {
		return nil, fmt.Errorf("create webhook %q: %w", def.Name, err)
	}
	return sub, nil
}

// Sender makes one attempt at one event (webhook.Sink.Send).
type Sender interface {
	Send(ctx context.Context, sub events.Subscription, e events.Event) events.Result
}

// SendParams are what a ping or a redelivery needs besides the webhook.
type SendParams struct {
	Store  store.Events
	Sender Sender
	// AgentID is recorded as the delivery's sender.
	AgentID string
	// Now is the ping's time; zero is the wall clock.
	Now time.Time
}

// PingWebhook sends a webhook.ping event (a fresh id, never in the outbox)
// to sub synchronously and records the attempt in its delivery log.
func PingWebhook(ctx context.Context, p SendParams, sub *store.Subscriber) (*store.Delivery, error) {
	at := p.Now
	if at.IsZero() {
		at = time.Now()
	}
	e := events.Event{ID: uuid.New(), Type: events.Ping, Time: store.UTC(at), Status: "ping"}
	return send(ctx, p, sub, e, 1)
}

// ErrEventGone is a redelivery of an event the outbox no longer keeps.
var ErrEventGone = errors.New("the event is no longer retained (events are deleted once every subscriber has passed them and events.retention has elapsed)")

// RedeliverWebhook sends the event of one of sub's deliveries again, with
// the same event id, and records the new attempt; the cursor does not
// move. A ping is sent again as a ping. An event cleaned up since is
// ErrEventGone (a conflict), and nothing is sent.
func RedeliverWebhook(ctx context.Context, p SendParams, sub *store.Subscriber, delivery uuid.UUID) (*store.Delivery, error) {
	d, err := p.Store.GetDelivery(ctx, sub.ID, delivery)
	if err != nil {
		return nil, fmt.Errorf("get delivery %s of webhook %q: %w", delivery, sub.Name, err)
	}
	var e events.Event
	if d.EventType == events.Ping {
		e = events.Event{ID: d.EventID, Type: events.Ping, Time: store.UTC(d.At), Status: "ping"}
	} else {
		rec, err := p.Store.GetEvent(ctx, d.EventID)
		if errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("redeliver event %s to webhook %q: %w: %w", d.EventID, sub.Name, store.ErrConflict, ErrEventGone)
		}
		if err != nil {
			return nil, fmt.Errorf("get event %s: %w", d.EventID, err)
		}
		// The sink drops a payload or result the webhook did not ask for.
		e = events.FromRecord(*rec)
	}
	return send(ctx, p, sub, e, d.Attempt+1)
}

// send makes the attempt and records it. An attempt outside the relay is
// never retried, so anything but a delivery is recorded as failed.
func send(ctx context.Context, p SendParams, sub *store.Subscriber, e events.Event, attempt int) (*store.Delivery, error) {
	res := p.Sender.Send(ctx, events.Subscription{ID: sub.ID, Name: sub.Name, Kind: sub.Kind, Config: sub.Config,
		IncludePayload: sub.IncludePayload, IncludeResult: sub.IncludeResult, Attempt: attempt}, e)
	outcome := store.DeliveryFailed
	if res.Outcome == events.Delivered {
		outcome = store.DeliveryDelivered
	}
	id, err := uuid.NewV7()
	if err != nil {
		return nil, fmt.Errorf("new delivery id: %w", err)
	}
	at := res.At
	if at.IsZero() {
		at = time.Now()
	}
	d := store.Delivery{ID: id, Subscriber: sub.ID, EventID: e.ID, EventSeq: e.Seq, EventType: e.Type, Attempt: attempt,
		Outcome: outcome, StatusCode: res.StatusCode, Error: res.Error, Response: res.Response, Duration: res.Duration,
		AgentID: p.AgentID, At: store.UTC(at)}
	if err := p.Store.RecordDelivery(context.WithoutCancel(ctx), d); err != nil {
		return nil, fmt.Errorf("record delivery of %s to webhook %q: %w", e.Type, sub.Name, err)
	}
	return &d, nil
}

// webhook reads the {id} of a webhook route and returns its subscriber;
// a subscriber of another kind is not a webhook, so not found.
func (s *Server) webhook(c echo.Context) (*store.Subscriber, error) {
	id, err := uuid.Parse(c.Param("id"))
	if err != nil {
		return nil, badRequest("webhook id %q is not a UUID", c.Param("id"))
	}
	sub, err := s.p.Store.GetSubscriber(c.Request().Context(), id)
	if err == nil && sub.Kind != store.SubscriberWebhook {
		err = store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("webhook %s: %w", id, err)
	}
	return sub, nil
}

// readWebhookDef reads the body of POST and PUT: malformed JSON is a 400,
// a key that is unknown or does not parse a 422 naming it.
func readWebhookDef(c echo.Context) (webhook.Def, error) {
	body, err := io.ReadAll(c.Request().Body)
	if err != nil {
		return webhook.Def{}, decodeError(err, "")
	}
	def, err := DecodeWebhookDef(body)
	var fe *events.FieldError
	switch {
	case errors.As(err, &fe):
		return def, webhookInvalid(fe.Field, fe.Message)
	case errors.Is(err, errTrailing):
		return def, badRequest("%v", err)
	case errors.Is(err, store.ErrInvalid):
		return def, err
	case err != nil:
		return def, decodeError(err, "")
	}
	return def, nil
}

func (s *Server) webhookView(c echo.Context, status int, sub *store.Subscriber) error {
	v, err := NewWebhookView(sub)
	if err != nil {
		return err
	}
	return c.JSON(status, v)
}

func webhookLocation(id uuid.UUID) string { return "/v1/webhooks/" + id.String() }

// createWebhook is POST /v1/webhooks: a new webhook only; a taken name is
// a 422 on name, as the other bad inputs, and nothing is written.
func (s *Server) createWebhook(c echo.Context) error {
	def, err := readWebhookDef(c)
	if err != nil {
		return err
	}
	sub, err := CreateWebhook(c.Request().Context(), s.p.Store, CreateWebhookParams{Def: def, Self: s.p.Self, Now: s.now()})
	if err != nil {
		return webhookError(err)
	}
	s.log.Info("webhook created through the API", "webhook", sub.Name, "id", sub.ID, "url", def.URL, "enabled", sub.Enabled)
	c.Response().Header().Set(echo.HeaderLocation, webhookLocation(sub.ID))
	return s.webhookView(c, http.StatusCreated, sub)
}

// putWebhook is PUT /v1/webhooks/{id}: replaces the definition, keeping
// the name (and so the cursor). A config webhook may be changed too; it
// keeps its source, so the view says the next start-up puts the file's
// definition back.
func (s *Server) putWebhook(c echo.Context) error {
	sub, err := s.webhook(c)
	if err != nil {
		return err
	}
	def, err := readWebhookDef(c)
	if err != nil {
		return err
	}
	if def.Name == "" {
		def.Name = sub.Name
	}
	if def.Name != sub.Name {
		return webhookInvalid("name", fmt.Sprintf("%q differs from the webhook's name %q; a webhook keeps its name: leave it out, or create another", def.Name, sub.Name))
	}
	ctx := c.Request().Context()
	if err := def.Validate(ctx, webhook.ValidateParams{Self: s.p.Self}); err != nil {
		return webhookError(err)
	}
	sd, err := WebhookSubscriber(def, sub.Source)
	if err != nil {
		return err
	}
	updated, _, err := s.p.Store.PutSubscriber(ctx, store.PutSubscriberParams{Def: sd, Now: s.now()})
	if err != nil {
		return webhookError(fmt.Errorf("replace webhook %q: %w", sub.Name, err))
	}
	if sub.Source == store.SourceConfig {
		s.log.Warn("config webhook changed through the API; the next start-up puts the file's definition back", "webhook", sub.Name, "id", sub.ID)
	} else {
		s.log.Info("webhook replaced through the API", "webhook", sub.Name, "id", sub.ID, "enabled", updated.Enabled)
	}
	return s.webhookView(c, http.StatusOK, updated)
}

func (s *Server) listWebhooks(c echo.Context) error {
	limit, cursor, err := pageQuery(c)
	if err != nil {
		return err
	}
	page, err := s.p.Store.ListSubscribers(c.Request().Context(), store.ListSubscribersParams{Kind: store.SubscriberWebhook, Limit: limit, Cursor: cursor})
	if err != nil {
		return fmt.Errorf("list webhooks: %w", err)
	}
	out := webhookList{Webhooks: make([]WebhookView, len(page.Subscribers)), NextCursor: page.NextCursor}
	for i, sub := range page.Subscribers {
		if out.Webhooks[i], err = NewWebhookView(sub); err != nil {
			return err
		}
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) getWebhook(c echo.Context) error {
	sub, err := s.webhook(c)
	if err != nil {
		return err
	}
	return s.webhookView(c, http.StatusOK, sub)
}

// deleteWebhook removes the webhook and its delivery log.
func (s *Server) deleteWebhook(c echo.Context) error {
	sub, err := s.webhook(c)
	if err != nil {
		return err
	}
	if err := s.p.Store.DeleteSubscriber(c.Request().Context(), sub.ID); err != nil {
		return fmt.Errorf("delete webhook %q: %w", sub.Name, err)
	}
	s.log.Info("webhook deleted through the API", "webhook", sub.Name, "id", sub.ID)
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) sendParams() (SendParams, error) {
	if s.p.Webhooks == nil {
		return SendParams{}, fmt.Errorf("%w: this server sends no webhooks", store.ErrUnsupported)
	}
	return SendParams{Store: s.p.Store, Sender: s.p.Webhooks, AgentID: s.p.AgentID, Now: s.now()}, nil
}

// testWebhook is POST /v1/webhooks/{id}/test: a ping, sent now, whatever
// the filter and even while disabled, answered with how it went.
func (s *Server) testWebhook(c echo.Context) error {
	sub, err := s.webhook(c)
	if err != nil {
		return err
	}
	p, err := s.sendParams()
	if err != nil {
		return err
	}
	d, err := PingWebhook(c.Request().Context(), p, sub)
	if err != nil {
		return err
	}
	s.log.Info("webhook pinged through the API", "webhook", sub.Name, "outcome", d.Outcome, "status_code", d.StatusCode)
	return c.JSON(http.StatusOK, NewDeliveryView(d))
}

func (s *Server) webhookDeliveries(c echo.Context) error {
	sub, err := s.webhook(c)
	if err != nil {
		return err
	}
	limit, cursor, err := pageQuery(c)
	if err != nil {
		return err
	}
	if cursor != "" {
		if _, err := uuid.Parse(cursor); err != nil {
			return badRequest("cursor %q is not a cursor from a previous page", cursor)
		}
	}
	page, err := s.p.Store.ListDeliveries(c.Request().Context(), store.ListDeliveriesParams{Subscriber: sub.ID, Limit: limit, Cursor: cursor})
	if err != nil {
		return fmt.Errorf("list deliveries of webhook %q: %w", sub.Name, err)
	}
	out := deliveryList{Deliveries: make([]DeliveryView, len(page.Deliveries)), NextCursor: page.NextCursor}
	for i, d := range page.Deliveries {
		out.Deliveries[i] = NewDeliveryView(d)
	}
	return c.JSON(http.StatusOK, out)
}

func deliveryID(c echo.Context) (uuid.UUID, error) {
	id, err := uuid.Parse(c.Param("delivery"))
	if err != nil {
		return uuid.Nil, badRequest("delivery id %q is not a UUID", c.Param("delivery"))
	}
	return id, nil
}

func (s *Server) webhookDelivery(c echo.Context) error {
	sub, err := s.webhook(c)
	if err != nil {
		return err
	}
	id, err := deliveryID(c)
	if err != nil {
		return err
	}
	d, err := s.p.Store.GetDelivery(c.Request().Context(), sub.ID, id)
	if err != nil {
		return fmt.Errorf("delivery %s of webhook %q: %w", id, sub.Name, err)
	}
	return c.JSON(http.StatusOK, NewDeliveryView(d))
}

// redeliverWebhook is POST /v1/webhooks/{id}/deliveries/{delivery}/redeliver.
func (s *Server) redeliverWebhook(c echo.Context) error {
	sub, err := s.webhook(c)
	if err != nil {
		return err
	}
	id, err := deliveryID(c)
	if err != nil {
		return err
	}
	p, err := s.sendParams()
	if err != nil {
		return err
	}
	d, err := RedeliverWebhook(c.Request().Context(), p, sub, id)
	if err != nil {
		return err
	}
	s.log.Info("event redelivered through the API", "webhook", sub.Name, "event_id", d.EventID, "event_type", d.EventType,
		"outcome", d.Outcome, "status_code", d.StatusCode)
	return c.JSON(http.StatusOK, NewDeliveryView(d))
}
