package maintenance

import "context"

// Signal carries what a loop did to a test, one value per pass, so tests
// wait on it instead of sleeping. The zero Signal is off, as in production:
// raising it costs nothing. A test calls Init before the loop starts and
// receives from the channel Init returns. Each raise waits for the receive
// (or the loop's stop), so the test sees every pass in order and a pass it
// receives after another began after that one was received.
type Signal[T any] struct{ ch chan T }

// Init turns the signal on and returns the channel its values arrive on.
func (s *Signal[T]) Init() <-chan T {
	s.ch = make(chan T)
	return s.ch
}

// Raise hands v to the test, if one listens, until ctx ends.
func (s *Signal[T]) Raise(ctx context.Context, v T) {
	if s.ch == nil {
		return
	}
	select {
	case s.ch <- v:
	case <-ctx.Done():
	}
}
