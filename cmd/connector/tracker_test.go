package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestHandlerTracker_WaitsForRunningHandlers(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	tr := newHandlerTracker(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		entered <- struct{}{}
		<-release
		panic(http.ErrAbortHandler) // a handler that panics still ends
	}))
	if n := tr.wait(context.Background()); n != 0 {
		t.Fatalf("wait with nothing running = %d, want 0", n)
	}

	done := make(chan struct{}, 2)
	for range 2 {
		go func() {
			defer func() { _ = recover(); done <- struct{}{} }()
			tr.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
		}()
		<-entered
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if n := tr.wait(ctx); n != 2 {
		t.Errorf("wait bounded while 2 handlers run = %d, want 2", n)
	}

	waited := make(chan int, 1)
	go func() { waited <- tr.wait(context.Background()) }()
	close(release)
	select {
	case n := <-waited:
		if n != 0 {
			t.Errorf("wait after the handlers ended = %d, want 0", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("wait did not return after the handlers ended")
	}
	<-done
	<-done
}
