// Package lease keeps an agent's hold on running jobs honest. A lease is the
// right to run one attempt of a job until lease_expires_at, proven by the
// job's lease_token (a fencing token): every write about the attempt names
// the token, so once a lease is lost no late answer can overwrite a newer
// outcome.
//
// The package holds two parts of that: Acquirer takes leases in batches
// sized to the free slots, and Heartbeat extends the leases of requests
// still in flight and reports the ones that were lost. The third, returning
// the jobs of agents that died, is a periodic pass every agent runs:
// maintenance.Rescuer.
package lease
