package dispatch

import "time"

// UseClock makes d read the wall clock from now: for the Hammerwork-Deadline
// header, the webhook-timestamp of a signature and seconds-form Retry-After
// answers. These face the app, whose host shares the agent's clock; nothing
// the database decides is read from it. Call it before the first Dispatch.
func (d *Dispatcher) UseClock(now func() time.Time) { d.now = now }
