package main

import (
	"context"
	"net/http"
	"sync"
)

// handlerTracker counts the requests its handler is serving, so that a
// shutdown can wait for them after [http.Server.Close], which does not. It
// is safe for concurrent use.
type handlerTracker struct {
	next http.Handler

	mu      sync.Mutex
	running int
	idle    chan struct{} // closed while running is zero
}

func newHandlerTracker(next http.Handler) *handlerTracker {
	idle := make(chan struct{})
	close(idle)
	return &handlerTracker{next: next, idle: idle}
}

// ServeHTTP serves the request with the tracked handler, counting it while
// it runs, a panicking one included.
func (t *handlerTracker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t.mu.Lock()
	if t.running == 0 {
		t.idle = make(chan struct{})
	}
	t.running++
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		t.running--
		if t.running == 0 {
			close(t.idle)
		}
		t.mu.Unlock()
	}()
	t.next.ServeHTTP(w, r)
}

// wait returns once no request is being served, or when ctx ends; it
// returns how many were still running then (zero when it did not time out).
func (t *handlerTracker) wait(ctx context.Context) int {
	t.mu.Lock()
	idle := t.idle
	t.mu.Unlock()
	select {
	case <-idle:
		return 0
	case <-ctx.Done():
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.running
}
