package store

import (
	"context"
	"time"
)

// JTIQueue is the group commit both stores use for UseJTI: callers queue
// their JWT id and wait; one writer takes every request waiting (up to
// JTIMaxBatch), records the group in one transaction or statement, and
// answers each caller only after that commit. The durability of one commit
// per call, at the cost of one commit per group.
type JTIQueue struct {
	ch     chan JTIRequest
	stop   <-chan struct{}
	done   chan struct{} // closed when Run returns
	closed error         // the answer once the store is closing
}

// JTIMaxBatch bounds one group.
const JTIMaxBatch = 512

// JTIRequest is one UseJTI call waiting for the writer: ID is
// HashID(issuer NUL jti), Exp how long it must be remembered. The writer
// answers it exactly once (Answer).
type JTIRequest struct {
	ID   string
	Exp  time.Time
	done chan error
}

// Answer tells the caller its outcome: nil when this call recorded the id,
// ErrReplayed when it was recorded already, or the commit's error.
func (r JTIRequest) Answer(err error) { r.done <- err }

// NewJTIQueue makes a queue that stops when stop is closed; closed is the
// error callers get then.
func NewJTIQueue(stop <-chan struct{}, closed error) *JTIQueue {
	return &JTIQueue{ch: make(chan JTIRequest, JTIMaxBatch), stop: stop, done: make(chan struct{}), closed: closed}
}

// Use queues the id and waits for the writer's answer. Once queued the
// request is answered: Use waits for it even if ctx ends, so that a caller
// never mistakes a recorded jti for an unrecorded one. A request queued as
// the store closed may find the writer gone.
func (q *JTIQueue) Use(ctx context.Context, id string, exp time.Time) error {
	req := JTIRequest{ID: id, Exp: exp, done: make(chan error, 1)}
	select {
	case q.ch <- req:
	case <-q.stop:
		return q.closed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-req.done:
		return err
	case <-q.done:
		select {
		case err := <-req.done:
			return err
		default:
			return q.closed
		}
	}
}

// Run is the writer: it hands groups to write until stop is closed, then
// refuses what is still queued. After the first request of a group it
// gathers more for window; with window 0 it takes only those already
// waiting (requests arriving during a commit form the next group). write
// must answer every request of the group.
func (q *JTIQueue) Run(window time.Duration, write func([]JTIRequest)) {
	defer close(q.done)
	batch := make([]JTIRequest, 0, JTIMaxBatch)
	for {
		select {
		case <-q.stop:
			q.drain()
			return
		case r := <-q.ch:
			batch = append(batch[:0], r)
		}
		if window > 0 {
			t := time.NewTimer(window)
			q.fill(&batch, t.C)
			t.Stop()
		} else {
			q.fill(&batch, nil)
		}
		write(batch)
	}
}

// fill adds waiting requests to the group until it is full, and then,
// without a timeout, until none is waiting, or with one until it fires.
func (q *JTIQueue) fill(batch *[]JTIRequest, timeout <-chan time.Time) {
	for len(*batch) < JTIMaxBatch {
		if timeout == nil {
			select {
			case r := <-q.ch:
				*batch = append(*batch, r)
			default:
				return
			}
			continue
		}
		select {
		case r := <-q.ch:
			*batch = append(*batch, r)
		case <-timeout:
			return
		}
	}
}

// drain refuses the requests still queued at close.
func (q *JTIQueue) drain() {
	for {
		select {
		case r := <-q.ch:
			r.Answer(q.closed)
		default:
			return
		}
	}
}
