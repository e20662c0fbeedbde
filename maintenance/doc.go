// Package maintenance holds the periodic services every agent runs without
// a leader: the rescuer (expired leases), the workflow expirer (workflow
// timeouts) and the cleaner (retention). Each is one pass over a bounded
// store call; Service runs it on one schedule for all of them: passes again
// at once while a pass comes back full, then waits Interval ± jitter. The
// store's row locking and guards make concurrent passes of many agents
// safe, at the cost of a few redundant queries, so nothing is elected.
//
// Tests watch a service through its Passed Signal instead of sleeping.
package maintenance
