package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/api"
	"github.com/hammerwork-go/hw-agent/store"
)

// clock is a server clock a test moves, so a changed schedule's times can
// be told from an unchanged one's.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func withClock(c *clock) option { return func(p *api.Params) { p.Now = c.now } }

func (e *env) put(t *testing.T, path, body string, header ...string) response {
	t.Helper()
	return e.do(t, http.MethodPut, path, strings.NewReader(body), header...)
}

func (r response) schedule(t *testing.T, status int) api.ScheduleView {
	t.Helper()
	require.Equal(t, status, r.status, string(r.body))
	var v api.ScheduleView
	require.NoError(t, json.Unmarshal(r.body, &v), string(r.body))
	return v
}

func (r response) run(t *testing.T) api.ScheduleRunView {
	t.Helper()
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	var v api.ScheduleRunView
	require.NoError(t, json.Unmarshal(r.body, &v), string(r.body))
	return v
}

type scheduleList struct {
	Schedules  []api.ScheduleView `json:"schedules"`
	NextCursor string             `json:"next_cursor"`
}

func (e *env) schedules(t *testing.T, query string) scheduleList {
	t.Helper()
	r := e.get(t, "/v1/schedules"+query)
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	var l scheduleList
	require.NoError(t, json.Unmarshal(r.body, &l), string(r.body))
	return l
}

// requireInvalid checks a 422 whose details list {field, message}, and
// returns its message and the messages by field.
func (r response) requireInvalid(t *testing.T) (string, map[string]string) {
	t.Helper()
	require.Equal(t, http.StatusUnprocessableEntity, r.status, string(r.body))
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Details []struct {
				Field   string `json:"field"`
				Message string `json:"message"`
			} `json:"details"`
		} `json:"error"`
	}
	require.NoError(t, json.Unmarshal(r.body, &body), string(r.body))
	require.Equal(t, "invalid", body.Error.Code, string(r.body))
	out := map[string]string{}
	for _, d := range body.Error.Details {
		out[d.Field] = d.Message
	}
	return body.Error.Message, out
}

const nightly = `{"name": "nightly", "cron": "0 2 * * *", "timezone": "Europe/Berlin",
	"target": {"job": {"queue": "reports", "payload": {"kind": "daily"}, "max_attempts": 3}}}`

func TestScheduleCreateGetListPutDelete(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, st store.Store) {
		clk := &clock{t: now}
		e := setup(t, st, withClock(clk))

		r := e.post(t, "/v1/schedules", nightly)
		created := r.schedule(t, http.StatusCreated)
		require.Equal(t, "/v1/schedules/nightly", r.header.Get("Location"))
		require.Equal(t, "nightly", created.Name)
		require.Equal(t, "Europe/Berlin", created.Timezone)
		require.Equal(t, "reports", created.Target.Job.Queue)
		require.JSONEq(t, `{"kind": "daily"}`, string(created.Target.Job.Payload))
		require.EqualValues(t, "skip", created.Overlap, "the defaults are filled in")
		require.EqualValues(t, "latest", created.Catchup)
		require.Equal(t, time.Hour, created.CatchupWindow.D())
		require.False(t, created.Paused)
		require.NotNil(t, created.NextRunAt)
		require.Equal(t, time.Date(2026, 11, 30, 1, 0, 0, 0, time.UTC), *created.NextRunAt, "02:00 in Berlin (CET) is 01:00 UTC")
		require.Equal(t, now, created.CreatedAt)
		require.Contains(t, string(r.body), `"catchup_window":"1h0m0s"`, "durations are Go duration strings")
		require.Contains(t, string(r.body), `"next_run_at":"2026-11-30T01:00:00Z"`, "times are RFC 3339 UTC")

		e.post(t, "/v1/schedules", nightly).requireError(t, http.StatusConflict, "conflict")

		got := e.get(t, "/v1/schedules/nightly").schedule(t, http.StatusOK)
		require.Equal(t, created, got)
		e.get(t, "/v1/schedules/nowhere").requireError(t, http.StatusNotFound, "not_found")

		clk.set(now.Add(time.Hour))
		same := e.put(t, "/v1/schedules/nightly", nightly).schedule(t, http.StatusOK)
		require.Equal(t, created, same, "an unchanged definition keeps the schedule as it was")
		withoutName := strings.Replace(nightly, `"name": "nightly", `, "", 1)
		require.Equal(t, created, e.put(t, "/v1/schedules/nightly", withoutName).schedule(t, http.StatusOK), "the name comes from the path")

		changed := e.put(t, "/v1/schedules/nightly", strings.Replace(nightly, "0 2 * * *", "30 3 * * *", 1)).schedule(t, http.StatusOK)
		require.Equal(t, "30 3 * * *", changed.Cron)
		require.Equal(t, now, changed.CreatedAt)
		require.Equal(t, now.Add(time.Hour), changed.UpdatedAt)
		require.Equal(t, time.Date(2026, 11, 30, 2, 30, 0, 0, time.UTC), *changed.NextRunAt)

		r = e.put(t, "/v1/schedules/hourly", `{"cron": "@hourly", "target": {"job": {"queue": "ticks"}}}`)
		hourly := r.schedule(t, http.StatusCreated)
		require.Equal(t, "UTC", hourly.Timezone)
		require.Equal(t, now.Add(2*time.Hour), *hourly.NextRunAt)

		r = e.put(t, "/v1/schedules/hourly", strings.Replace(nightly, "nightly", "other", 1))
		_, fields := r.requireInvalid(t)
		require.Contains(t, fields["name"], `"other" does not match the path's "hourly"`)

		page := e.schedules(t, "?limit=1")
		require.Len(t, page.Schedules, 1)
		require.Equal(t, "hourly", page.Schedules[0].Name, "by name")
		require.Equal(t, "hourly", page.NextCursor)
		page = e.schedules(t, "?limit=1&cursor="+page.NextCursor)
		require.Len(t, page.Schedules, 1)
		require.Equal(t, changed, page.Schedules[0])
		require.Empty(t, page.NextCursor)
		e.get(t, "/v1/schedules?sort=name").requireError(t, http.StatusBadRequest, "bad_request")
		e.get(t, "/v1/schedules?limit=0").requireError(t, http.StatusBadRequest, "bad_request")

		r = e.do(t, http.MethodDelete, "/v1/schedules/nightly", nil)
		require.Equal(t, http.StatusNoContent, r.status, string(r.body))
		e.get(t, "/v1/schedules/nightly").requireError(t, http.StatusNotFound, "not_found")
		e.do(t, http.MethodDelete, "/v1/schedules/nightly", nil).requireError(t, http.StatusNotFound, "not_found")
		require.Len(t, e.schedules(t, "").Schedules, 1)
	})
}

func TestScheduleWritesRejectBadInputNamingTheField(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, st store.Store) {
		e := setup(t, st)
		for _, tc := range []struct {
			name, body string
			fields     []string
		}{
			{"bad cron", `{"name": "a", "cron": "61 * * * *", "target": {"job": {"queue": "q"}}}`, []string{"cron"}},
			{"bad timezone", `{"name": "a", "cron": "0 2 * * *", "timezone": "Mars/Olympus", "target": {"job": {"queue": "q"}}}`, []string{"timezone"}},
			{"both at once", `{"name": "a", "cron": "every day", "timezone": "Nowhere", "target": {"job": {"queue": "q"}}}`, []string{"cron", "timezone"}},
			{"no target", `{"name": "a", "cron": "@daily"}`, []string{"target"}},
			{"bad queue", `{"name": "a", "cron": "@daily", "target": {"job": {"queue": "a b"}}}`, []string{"target.job"}},
			{"bad durations", `{"name": "a", "cron": "@daily", "jitter": "soon", "catchup_window": "-1m", "target": {"job": {"queue": "q"}}}`, []string{"jitter", "catchup_window"}},
			{"bad time", `{"name": "a", "cron": "@daily", "start_at": "tomorrow", "target": {"job": {"queue": "q"}}}`, []string{"start_at"}},
			{"bad policy", `{"name": "a", "cron": "@daily", "overlap": "queue", "target": {"job": {"queue": "q"}}}`, []string{"overlap"}},
			{"bad workflow", `{"name": "a", "cron": "@daily", "target": {"workflow": {"name": "w", "jobs": [{"name": "s"}]}}}`, []string{"target.workflow.jobs[0].queue"}},
		} {
			for _, method := range []string{http.MethodPost, http.MethodPut} {
				r := e.do(t, method, map[string]string{http.MethodPost: "/v1/schedules", http.MethodPut: "/v1/schedules/a"}[method], strings.NewReader(tc.body))
				msg, details := r.requireInvalid(t)
				for _, f := range tc.fields {
					require.Contains(t, details, f, "%s %s: %s", method, tc.name, r.body)
					require.Contains(t, msg, f+": ", "%s %s: the message names the field", method, tc.name)
				}
			}
		}

		r := e.post(t, "/v1/schedules", `{"name": "a", "cron": "@daily", "target": {"job": {"queue": "q"}}, "crontab": "x"}`)
		require.Equal(t, "crontab", r.requireError(t, http.StatusBadRequest, "bad_request").Details["field"], "unknown fields are refused, as for a job")
		r = e.post(t, "/v1/schedules", `{"name": "a", "cron": "@daily", "target": {"job": {"queue": "q", "max_attempt": 3}}}`)
		require.Equal(t, "target.job.max_attempt", r.requireError(t, http.StatusBadRequest, "bad_request").Details["field"])
		e.post(t, "/v1/schedules", `{"name": `).requireError(t, http.StatusBadRequest, "bad_request")

		require.Empty(t, e.schedules(t, "").Schedules, "nothing rejected was written")
	})
}

func TestSchedulePauseResumeTrigger(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, st store.Store) {
		w := &wakes{}
		clk := &clock{t: now}
		e := setup(t, st, withClock(clk), func(p *api.Params) { p.Wake = w.wake })
		e.post(t, "/v1/schedules", nightly).schedule(t, http.StatusCreated)

		paused := e.post(t, "/v1/schedules/nightly/pause", `{"reason": "maintenance"}`).schedule(t, http.StatusOK)
		require.True(t, paused.Paused)
		require.Equal(t, "maintenance", paused.PausedReason)
		require.Equal(t, now, *paused.PausedAt)
		again := e.post(t, "/v1/schedules/nightly/pause", "").schedule(t, http.StatusOK)
		require.True(t, again.Paused, "the body is optional; pausing twice is no error")
		e.post(t, "/v1/schedules/nightly/pause", `{"why": "x"}`).requireError(t, http.StatusBadRequest, "bad_request")
		e.post(t, "/v1/schedules/nowhere/pause", "").requireError(t, http.StatusNotFound, "not_found")

		clk.set(now.Add(13 * time.Hour))
		r := e.post(t, "/v1/schedules/nightly/trigger", "")
		run := r.run(t)
		require.Equal(t, "nightly", run.Schedule)
		// now falls on a whole second, where slots fall: the trigger takes the
		// microsecond after it.
		require.Equal(t, now.Add(13*time.Hour+time.Microsecond), run.NominalTime, "a trigger's nominal time is now")
		require.EqualValues(t, "fired", run.Outcome)
		require.True(t, run.Triggered)
		require.NotNil(t, run.JobID, "it fires even while paused")
		require.Equal(t, "/v1/jobs/"+run.JobID.String(), r.header.Get("Location"))
		require.Equal(t, [][]string{{"reports"}}, w.take(), "the job's queue is woken")
		j := e.stored(t, *run.JobID)
		require.Equal(t, "reports", j.Queue)
		require.Equal(t, 3, j.MaxAttempts)
		require.Equal(t, "nightly@2026-11-30T01:00:00Z", j.CorrelationID)
		require.NotEmpty(t, j.TraceID, "the run's job is created under a producer span")

		resumed := e.post(t, "/v1/schedules/nightly/resume", "").schedule(t, http.StatusOK)
		require.False(t, resumed.Paused)
		require.Equal(t, run.JobID, resumed.LastJobID)
		require.Equal(t, run.NominalTime, *resumed.LastRunAt)
		require.Equal(t, time.Date(2026, 12, 1, 1, 0, 0, 0, time.UTC), *resumed.NextRunAt, "counting restarts from the resume")
		require.Empty(t, w.take(), "pauses and resumes make nothing leasable")
		e.post(t, "/v1/schedules/nowhere/resume", "").requireError(t, http.StatusNotFound, "not_found")
		e.post(t, "/v1/schedules/nowhere/trigger", "").requireError(t, http.StatusNotFound, "not_found")

		e.put(t, "/v1/schedules/pipeline", `{"cron": "@daily", "target": {"workflow": {"name": "etl", "jobs": [
			{"name": "extract", "queue": "etl_in"},
			{"name": "load", "queue": "etl_out", "depends_on": ["extract"]}]}}}`).schedule(t, http.StatusCreated)
		r = e.post(t, "/v1/schedules/pipeline/trigger", "")
		wrun := r.run(t)
		require.NotNil(t, wrun.WorkflowID)
		require.Nil(t, wrun.JobID)
		require.Equal(t, "/v1/workflows/"+wrun.WorkflowID.String(), r.header.Get("Location"))
		require.Equal(t, [][]string{{"etl_in"}}, w.take(), "only the roots' queues are leasable")
		wf, err := st.GetWorkflow(t.Context(), *wrun.WorkflowID)
		require.NoError(t, err)
		require.Equal(t, "etl@2026-11-30T01:00:00Z", wf.Name)
	})
}

func TestScheduleRunsArePagedNewestFirst(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, st store.Store) {
		clk := &clock{t: now}
		e := setup(t, st, withClock(clk))
		e.post(t, "/v1/schedules", nightly).schedule(t, http.StatusCreated)
		var runs []api.ScheduleRunView
		for i := range 3 {
			clk.set(now.Add(time.Duration(i) * time.Minute))
			runs = append(runs, e.post(t, "/v1/schedules/nightly/trigger", "").run(t))
		}

		type runList struct {
			Runs       []api.ScheduleRunView `json:"runs"`
			NextCursor string                `json:"next_cursor"`
		}
		read := func(query string) runList {
			t.Helper()
			r := e.get(t, "/v1/schedules/nightly/runs"+query)
			require.Equal(t, http.StatusOK, r.status, string(r.body))
			var l runList
			require.NoError(t, json.Unmarshal(r.body, &l), string(r.body))
			return l
		}
		first := read("?limit=2")
		require.Equal(t, []api.ScheduleRunView{runs[2], runs[1]}, first.Runs)
		require.NotEmpty(t, first.NextCursor)
		second := read("?limit=2&cursor=" + first.NextCursor)
		require.Equal(t, []api.ScheduleRunView{runs[0]}, second.Runs)
		require.Empty(t, second.NextCursor)
		require.Len(t, read("").Runs, 3)

		e.get(t, "/v1/schedules/nightly/runs?cursor=yesterday").requireError(t, http.StatusBadRequest, "bad_request")
		e.get(t, "/v1/schedules/nightly/runs?outcome=fired").requireError(t, http.StatusBadRequest, "bad_request")
		e.get(t, "/v1/schedules/nowhere/runs").requireError(t, http.StatusNotFound, "not_found")
	})
}

func TestScheduleNextPreviewsFireTimes(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, st store.Store) {
		clk := &clock{t: time.Date(2027, 3, 26, 12, 0, 0, 0, time.UTC)}
		e := setup(t, st, withClock(clk))
		e.post(t, "/v1/schedules", nightly).schedule(t, http.StatusCreated)

		type preview struct {
			Name     string      `json:"name"`
			Timezone string      `json:"timezone"`
			Times    []time.Time `json:"times"`
		}
		next := func(path string) preview {
			t.Helper()
			r := e.get(t, path)
			require.Equal(t, http.StatusOK, r.status, string(r.body))
			var p preview
			require.NoError(t, json.Unmarshal(r.body, &p), string(r.body))
			return p
		}
		p := next("/v1/schedules/nightly/next?n=3")
		require.Equal(t, "Europe/Berlin", p.Timezone)
		require.Equal(t, []time.Time{
			time.Date(2027, 3, 27, 1, 0, 0, 0, time.UTC), // 02:00 CET
			time.Date(2027, 3, 28, 1, 0, 0, 0, time.UTC), // 02:00 is skipped by the spring change: 03:00 CEST
			time.Date(2027, 3, 29, 0, 0, 0, 0, time.UTC), // 02:00 CEST
		}, p.Times)
		require.Len(t, next("/v1/schedules/nightly/next").Times, api.DefaultPreview)
		require.Len(t, next("/v1/schedules/nightly/next?n=100").Times, 100)

		for _, n := range []string{"0", "101", "ten", "-1"} {
			r := e.get(t, "/v1/schedules/nightly/next?n="+n)
			require.Contains(t, r.requireError(t, http.StatusUnprocessableEntity, "invalid").Message, "n ", n)
		}
		e.get(t, "/v1/schedules/nowhere/next").requireError(t, http.StatusNotFound, "not_found")

		e.put(t, "/v1/schedules/ending", `{"cron": "0 2 * * *", "timezone": "Europe/Berlin", "end_at": "2027-03-28T01:00:00Z",
			"target": {"job": {"queue": "q"}}}`).schedule(t, http.StatusCreated)
		require.Equal(t, []time.Time{time.Date(2027, 3, 27, 1, 0, 0, 0, time.UTC), time.Date(2027, 3, 28, 1, 0, 0, 0, time.UTC)},
			next("/v1/schedules/ending/next?n=5").Times, "bounded by end_at, inclusive")

		e.put(t, "/v1/schedules/ticks", `{"cron": "@every 1h", "target": {"job": {"queue": "q"}}}`).schedule(t, http.StatusCreated)
		clk.set(clk.now().Add(90 * time.Minute))
		require.Equal(t, []time.Time{time.Date(2027, 3, 26, 14, 0, 0, 0, time.UTC), time.Date(2027, 3, 26, 15, 0, 0, 0, time.UTC)},
			next("/v1/schedules/ticks/next?n=2").Times, "an @every schedule keeps the phase of its creation")
	})
}

func TestScheduleRoutesNeedTheToken(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, st store.Store) {
		e := setup(t, st, func(p *api.Params) { p.Token = "s3cret" })
		e.get(t, "/v1/schedules").requireError(t, http.StatusUnauthorized, "unauthorized")
		e.post(t, "/v1/schedules", nightly).requireError(t, http.StatusUnauthorized, "unauthorized")
		e.get(t, "/v1/schedules/nightly/next", "Authorization", "Bearer wrong").requireError(t, http.StatusUnauthorized, "unauthorized")
		e.post(t, "/v1/schedules", nightly, "Authorization", "Bearer s3cret").schedule(t, http.StatusCreated)
		r := e.get(t, "/v1/schedules", "Authorization", "Bearer s3cret")
		require.Equal(t, http.StatusOK, r.status, string(r.body))
	})
}
