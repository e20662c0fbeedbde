package store

import (
	"fmt"

	"github.com/google/uuid"

	"github.com/hammerwork-go/hw-agent/job"
)

// Unique keys: while a job with a unique key is pending or running, an
// enqueue of the same key returns that job (Duplicate set) instead of
// inserting another. Every backend enforces it with a unique index over the
// key restricted to live jobs; this file holds the part that is the same
// everywhere: what the caller gets back and what is left to write.

// HasUniqueKey reports whether any new job names a unique key.
func HasUniqueKey(news []NewJob) bool {
	for _, n := range news {
		if n.UniqueKey != "" {
			return true
		}
	}
	return false
}

// FirstPerKey returns the jobs that claim a unique key: the first job of
// each key in input order. Later jobs with the same key are duplicates of
// it.
func FirstPerKey(jobs []*job.Job) []*job.Job {
	seen := map[string]bool{}
	var out []*job.Job
	for _, j := range jobs {
		if j.UniqueKey != "" && !seen[j.UniqueKey] {
			seen[j.UniqueKey] = true
			out = append(out, j)
		}
	}
	return out
}

// UniqueKeys lists the distinct keys of jobs.
func UniqueKeys(jobs []*job.Job) []string {
	var keys []string
	for _, j := range FirstPerKey(jobs) {
		keys = append(keys, j.UniqueKey)
	}
	return keys
}

// Dedupe settles an enqueue with unique keys. live maps each key already
// held by a live job (read in the enqueue transaction, after the insert
// attempt or under the single writer) to that job. It returns the result
// in input order (a duplicate is the live job, or the first job of the
// input with its key, with Duplicate set), the jobs to write, and their
// edges: an edge to a duplicate points at the job it duplicates, and a
// duplicate's own edges are dropped.
func Dedupe(jobs []*job.Job, edges []Edge, live map[string]*job.Job) (result, write []*job.Job, keep []Edge) {
	alias := map[uuid.UUID]uuid.UUID{}
	first := map[string]*job.Job{}
	result = make([]*job.Job, len(jobs))
	for i, j := range jobs {
		var holder *job.Job
		if j.UniqueKey != "" {
			if holder = live[j.UniqueKey]; holder == nil {
				holder = first[j.UniqueKey]
			}
		}
		if holder == nil {
			if j.UniqueKey != "" {
				first[j.UniqueKey] = j
			}
			result[i] = j
			write = append(write, j)
			continue
		}
		dup := *holder
		dup.Duplicate = true
		result[i] = &dup
		alias[j.ID] = holder.ID
	}
	if len(alias) == 0 {
		return result, write, edges
	}
	for _, j := range write {
		for k, p := range j.DependsOn {
			if to, ok := alias[p]; ok {
				j.DependsOn[k] = to
			}
		}
	}
	for _, e := range edges {
		if _, dup := alias[e.JobID]; dup {
			continue
		}
		if to, ok := alias[e.DependsOnID]; ok {
			e.DependsOnID = to
		}
		keep = append(keep, e)
	}
	return result, write, keep
}

// maxClaimRounds bounds the re-tries of a key whose holder finished between
// an insert attempt and the read of the holders: the key is free then, so
// the enqueue claims it again.
const maxClaimRounds = 3

// ClaimKeys settles the jobs that claim unique keys (FirstPerKey) where the
// database decides who holds a key: an insert that skips rows whose key a
// live job holds, and makes a concurrent insert of the same key wait for
// its outcome. Each round, insert writes the claims, skipping taken keys,
// and holders reads the live job that holds each claim's key (the claim
// itself when it was written). A claim held by another job is a duplicate
// of it; one whose key nobody holds lost to a holder that has finished
// since, and claims again, at most maxClaimRounds times (then ErrConflict).
// It returns the other holders by key, for Dedupe.
func ClaimKeys(claims []*job.Job, insert func([]*job.Job) error, holders func([]*job.Job) ([]*job.Job, error)) (map[string]*job.Job, error) {
	live := map[string]*job.Job{}
	for round := 0; len(claims) > 0; round++ {
		if round == maxClaimRounds {
			return nil, fmt.Errorf("%w: unique keys kept changing hands during the enqueue", ErrConflict)
		}
		if err := insert(claims); err != nil {
			return nil, err
		}
		held, err := holders(claims)
		if err != nil {
			return nil, err
		}
		byKey := make(map[string]*job.Job, len(held))
		for _, h := range held {
			byKey[h.UniqueKey] = h
		}
		var again []*job.Job
		for _, c := range claims {
			switch h := byKey[c.UniqueKey]; {
			case h == nil:
				again = append(again, c)
			case h.ID != c.ID:
				live[c.UniqueKey] = h
			}
		}
		claims = again
	}
	return live, nil
}
