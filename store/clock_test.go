package store

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fakeDB is a database whose clock reads what its time function says;
// every reading is counted and may be made to fail.
type fakeDB struct {
	mu    sync.Mutex
	reads int
	fail  error
	time  func() time.Time
	// rtt, when set, is spent on the fake monotonic clock by each reading.
	rtt func()
}

func (f *fakeDB) read(context.Context) (time.Time, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	if f.rtt != nil {
		f.rtt()
	}
	if f.fail != nil {
		return time.Time{}, f.fail
	}
	return f.time(), nil
}

func (f *fakeDB) readings() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reads
}

func (f *fakeDB) failWith(err error) {
	f.mu.Lock()
	f.fail = err
	f.mu.Unlock()
}

// fakeMono is a monotonic clock that moves only when told.
type fakeMono struct {
	mu  sync.Mutex
	now time.Duration
}

func (m *fakeMono) read() time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.now
}

func (m *fakeMono) advance(d time.Duration) {
	m.mu.Lock()
	m.now += d
	m.mu.Unlock()
}

func TestClockAnswersTheDatabasesTimeNotTheHosts(t *testing.T) {
	t.Parallel()
	db := &fakeDB{time: func() time.Time { return time.Now().Add(time.Hour) }}
	c := NewClock(db.read, DefaultClockSync)

	got, err := c.Now(t.Context())
	require.NoError(t, err)
	require.WithinDuration(t, time.Now().Add(time.Hour), got, 100*time.Millisecond, "a database an hour ahead: Now is an hour ahead")
	require.Equal(t, time.UTC, got.Location())

	later, err := c.Now(t.Context())
	require.NoError(t, err)
	require.False(t, later.Before(got), "the estimate never goes back")
	require.WithinDuration(t, time.Now().Add(time.Hour), later, 100*time.Millisecond)
	require.Equal(t, 1, db.readings(), "within the interval the database is not read again")
}

func TestClockAddsOnlyMonotonicTimeToItsReading(t *testing.T) {
	t.Parallel()
	mono := &fakeMono{}
	// A reading far from any wall clock: the estimate can only come from it.
	reading := time.Date(2031, 3, 4, 5, 6, 7, 0, time.UTC)
	db := &fakeDB{time: func() time.Time { return reading }, rtt: func() { mono.advance(100 * time.Millisecond) }}
	c := NewClock(db.read, DefaultClockSync)
	c.mono = mono.read

	got, err := c.Now(t.Context())
	require.NoError(t, err)
	require.Equal(t, reading.Add(50*time.Millisecond), got, "the reading is taken at the midpoint of its round trip")

	mono.advance(2 * time.Second)
	got, err = c.Now(t.Context())
	require.NoError(t, err)
	require.Equal(t, reading.Add(2*time.Second+50*time.Millisecond), got, "only the monotonic time elapsed is added")
	require.Equal(t, 1, db.readings())
}

func TestClockReadsAgainOnceItsReadingIsOld(t *testing.T) {
	t.Parallel()
	mono := &fakeMono{}
	first := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	second := first.Add(time.Hour) // the database's clock was stepped meanwhile
	var next sync.Mutex
	reading := first
	db := &fakeDB{time: func() time.Time {
		next.Lock()
		defer next.Unlock()
		return reading
	}}
	c := NewClock(db.read, 30*time.Second)
	c.mono = mono.read
	_, err := c.Now(t.Context())
	require.NoError(t, err)

	next.Lock()
	reading = second
	next.Unlock()
	mono.advance(29 * time.Second)
	got, err := c.Now(t.Context())
	require.NoError(t, err)
	require.Equal(t, first.Add(29*time.Second), got, "a reading younger than the interval answers")

	mono.advance(time.Second)
	got, err = c.Now(t.Context())
	require.NoError(t, err)
	require.Equal(t, second, got, "at the interval the database is read again")
	require.Equal(t, 2, db.readings())
}

func TestClockKeepsItsEstimateWhenAReadingFails(t *testing.T) {
	t.Parallel()
	mono := &fakeMono{}
	reading := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	db := &fakeDB{time: func() time.Time { return reading }}
	c := NewClock(db.read, 30*time.Second)
	c.mono = mono.read
	_, err := c.Now(t.Context())
	require.NoError(t, err)

	down := errors.New("connection refused")
	db.failWith(down)
	mono.advance(time.Minute)
	got, err := c.Now(t.Context())
	require.ErrorIs(t, err, down, "the failed reading is reported")
	require.Equal(t, reading.Add(time.Minute), got, "the last estimate carries on")

	_, err = c.Now(t.Context())
	require.ErrorIs(t, err, down)
	require.Equal(t, 3, db.readings(), "each call after a failure tries again")

	db.failWith(nil)
	got, err = c.Now(t.Context())
	require.NoError(t, err)
	require.Equal(t, reading, got, "a good reading replaces the estimate")
}

func TestClockWithoutAReadingReturnsTheError(t *testing.T) {
	t.Parallel()
	down := errors.New("connection refused")
	db := &fakeDB{fail: down}
	got, err := NewClock(db.read, DefaultClockSync).Now(t.Context())
	require.ErrorIs(t, err, down)
	require.True(t, got.IsZero(), "no estimate without a reading")
}

func TestClockWithZeroIntervalReadsEveryTime(t *testing.T) {
	t.Parallel()
	db := &fakeDB{time: time.Now}
	c := NewClock(db.read, 0)
	for range 3 {
		got, err := c.Now(t.Context())
		require.NoError(t, err)
		require.WithinDuration(t, time.Now(), got, 100*time.Millisecond)
	}
	require.Equal(t, 3, db.readings())
}

func TestClockIsSafeForConcurrentCallers(t *testing.T) {
	t.Parallel()
	db := &fakeDB{time: func() time.Time { return time.Now().Add(-time.Hour) }}
	c := NewClock(db.read, time.Millisecond)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				got, err := c.Now(context.Background())
				if err != nil || got.IsZero() {
					t.Errorf("Now: %v, %v", got, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	got, err := c.Now(t.Context())
	require.NoError(t, err)
	require.WithinDuration(t, time.Now().Add(-time.Hour), got, 100*time.Millisecond)
}
