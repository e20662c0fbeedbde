// Package lease keeps an agent's hold on running jobs honest. A lease is the
// right to run one attempt of a job until lease_expires_at, proven by the
// job's lease_token (a fencing token): every write about the attempt names
// the token, so once a lease is lost no late answer can overwrite a newer
// outcome.
//
// The package holds the three parts of that: Acquirer takes leases in
// batches sized to the free slots, Heartbeat extends the leases of requests
// still in flight and reports the ones that were lost, and Rescuer returns
// the jobs of agents that died to pending.
package lease
