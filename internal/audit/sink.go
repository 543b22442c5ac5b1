package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Sink kinds (the Caddyfile's `audit_events file|fhir`).
const (
	SinkFile = "file"
	SinkFHIR = "fhir"
)

// Sink parameters.
const (
	// queueSize bounds the events waiting to be written: beyond it, new
	// events are dropped (and counted), never waited for.
	queueSize = 4096
	// postTimeout bounds one POST to the FHIR server.
	postTimeout = 10 * time.Second
	// drainTimeout bounds how long Close waits for the queue to empty.
	drainTimeout = 5 * time.Second
	// failureLogEvery spaces the log lines of a failing sink.
	failureLogEvery = time.Minute
)

// queued is an event waiting in a writer's queue.
type queued struct {
	issuer string
	e      Event
}

// Writer is a Sink that writes each event as a FHIR AuditEvent, one JSON
// object per line to a file, or POSTed to a FHIR server's AuditEvent
// endpoint, from one goroutine fed by a bounded queue: Send never blocks
// the request that records the event. Close drains the queue (for a
// bounded time) and stops it.
type Writer struct {
	kind    string
	target  string // file path or the AuditEvent endpoint URL
	file    *os.File
	client  *http.Client
	logger  *zap.Logger
	dropped func(sink, reason string)

	mu      sync.RWMutex // guards closed against Send
	closed  bool
	queue   chan queued
	done    chan struct{}
	lastLog time.Time // only the writer goroutine uses it
}

// WriterOptions configure a Writer.
type WriterOptions struct {
	// Kind is SinkFile or SinkFHIR.
	Kind string
	// Target is the file's path (appended to, created 0600 if absent) or
	// the FHIR server's base URL (events are POSTed to {Target}/AuditEvent).
	Target string
	// Client POSTs to the FHIR server; nil: a client with a timeout.
	Client *http.Client
	// Logger receives failures (never an event's content).
	Logger *zap.Logger
	// Dropped counts an event that was not delivered (metric); reason is
	// "queue_full", "failed" or "closed" (sent after Close). Nil: not
	// counted.
	Dropped func(sink, reason string)
}

// NewWriter opens the sink and starts its goroutine.
func NewWriter(o WriterOptions) (*Writer, error) {
	w := &Writer{kind: o.Kind, target: o.Target, client: o.Client, logger: o.Logger, dropped: o.Dropped,
		queue: make(chan queued, queueSize), done: make(chan struct{})}
	if w.logger == nil {
		w.logger = zap.NewNop()
	}
	if w.dropped == nil {
		w.dropped = func(string, string) {}
	}
	switch o.Kind {
	case SinkFile:
		f, err := os.OpenFile(o.Target, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("audit_events file: %w", err)
		}
		w.file = f
	case SinkFHIR:
		w.target = strings.TrimSuffix(o.Target, "/") + "/AuditEvent"
		if w.client == nil {
			w.client = &http.Client{Timeout: postTimeout}
		}
	default:
		return nil, fmt.Errorf("audit_events: unknown sink %q (file or fhir)", o.Kind)
	}
	go w.run()
	return w, nil
}

// Send queues an event; when the queue is full the event is dropped and
// counted.
func (w *Writer) Send(issuer string, e Event) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		w.dropped(w.kind, "closed")
		return
	}
	select {
	case w.queue <- queued{issuer, e}:
	default:
		w.dropped(w.kind, "queue_full")
	}
}

// Close stops accepting events, writes what is queued (waiting at most
// drainTimeout) and closes the file. Safe to call more than once.
func (w *Writer) Close() error {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.queue)
	}
	w.mu.Unlock()
	select {
	case <-w.done:
	case <-time.After(drainTimeout):
		w.logger.Warn("audit_events: the queue was not drained in time; the remaining events are dropped")
	}
	return nil
}

// run writes the queued events until Close.
func (w *Writer) run() {
	defer close(w.done)
	if w.file != nil {
		defer func() { _ = w.file.Close() }()
	}
	for q := range w.queue {
		b, err := json.Marshal(ToAuditEvent(q.issuer, q.e))
		if err == nil {
			err = w.write(b)
		}
		if err != nil {
			w.dropped(w.kind, "failed")
			if now := time.Now(); now.Sub(w.lastLog) >= failureLogEvery {
				w.lastLog = now
				w.logger.Error("audit_events: writing an AuditEvent failed", zap.String("sink", w.kind), zap.Error(err))
			}
		}
	}
}

// write delivers one AuditEvent.
func (w *Writer) write(b []byte) error {
	if w.file != nil {
		_, err := w.file.Write(append(b, '\n')) // one write per line (O_APPEND)
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), postTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.target, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/fhir+json")
	req.Header.Set("Accept", "application/fhir+json")
	resp, err := w.client.Do(req)
	if err != nil {
		return err
	}
	_ = resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("the FHIR server answered %s", resp.Status)
	}
	return nil
}
